"""The VNFMs registered with the orchestrator (protocol §2): ``register`` answers broker credentials
and remembers the VNFM's endpoint by type; ``unregister`` (or ``deregister``) with the right password
forgets it. A message without ``action`` or ``type`` gets no answer.

As the Java NFVO's VnfmRegister (every registration kept, ``getVnfm(type)`` the first of that type), the
VNFM of a type that registered first is the one commands go to: a later VNFM of the same type on another
endpoint waits in line (it takes over when the first unregisters) instead of taking its work."""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from typing import Any

from gvnfm.orchestrator.errors import OrchestratorError

log = logging.getLogger(__name__)


class NoVnfm(OrchestratorError):
    """No VNFM of the type a VNFD names is registered."""


class VnfmRegistry:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        """``credentials``: what every VNFM gets; None = user = its type, a random 16-character password."""
        self.credentials = credentials
        #: type -> the VNFM serving it (the first registered): {"endpoint": queue name, "description":
        #: vnfmManagerEndpoint, "credentials": {...}}
        self.vnfms: dict[str, dict[str, Any]] = {}
        #: type -> later VNFMs of that type on other endpoints, in registration order (same entries)
        self.waiting: dict[str, list[dict[str, Any]]] = {}
        self._changed = asyncio.Event()

    def handle(self, data: Any) -> dict[str, str] | None:
        """Apply one registration message; returns the answer to send (None = no answer)."""
        action = data.get("action") if isinstance(data, dict) else None
        type_ = data.get("type") if isinstance(data, dict) else None
        if not action or not type_ or not isinstance(data, dict):
            log.warning("event=registration_ignored reason=no_action_or_type")
            return None
        type_ = str(type_)
        described = data.get("vnfmManagerEndpoint")
        description = described if isinstance(described, dict) else {}
        named = str(description.get("endpoint") or "")
        if action == "register":
            endpoint = named or type_
            known = self._entries(type_, endpoint)
            if known:                               # registering again: the stored credentials
                entry = known[0]
                entry["description"] = description
            else:
                entry = {"endpoint": endpoint, "description": description,
                         "credentials": self._credentials_for(type_)}
                if type_ in self.vnfms:
                    self.waiting.setdefault(type_, []).append(entry)
                    log.info("event=vnfm_registered type=%s endpoint=%s serving_endpoint=%s", type_, endpoint,
                             self.vnfms[type_]["endpoint"])
                    return dict(entry["credentials"])
                self.vnfms[type_] = entry
            self._changed.set()
            log.info("event=vnfm_registered type=%s endpoint=%s", type_, endpoint)
            return dict(entry["credentials"])
        if action in ("unregister", "deregister"):
            candidates = self._entries(type_, named or None)
            if not candidates:
                log.warning("event=unregister_unknown type=%s", type_)
                return None
            password = data.get("password")
            match = next((e for e in candidates if password == e["credentials"].get("rabbitPassword")), None)
            if match is None:
                log.warning("event=unregister_refused type=%s reason=wrong_password", type_)
                return None
            line = self.waiting.get(type_, [])
            if self.vnfms.get(type_) is match:
                del self.vnfms[type_]
                if line:                            # the next of that type takes over
                    self.vnfms[type_] = line.pop(0)
                    self._changed.set()
            else:
                line.remove(match)
            if not line:
                self.waiting.pop(type_, None)
            log.info("event=vnfm_unregistered type=%s endpoint=%s", type_, match["endpoint"])
            return None
        log.warning("event=registration_ignored action=%r type=%s", action, type_)
        return None

    def _entries(self, type_: str, endpoint: str | None) -> list[dict[str, Any]]:
        """The registered VNFMs of that type (the serving one first), of that endpoint if one is given."""
        serving = self.vnfms.get(type_)
        entries = ([serving] if serving is not None else []) + self.waiting.get(type_, [])
        return [e for e in entries if endpoint is None or e["endpoint"] == endpoint]

    def _credentials_for(self, type_: str) -> dict[str, str]:
        if self.credentials is not None:
            user, password = self.credentials
            return {"rabbitUsername": user, "rabbitPassword": password}
        alphabet = string.ascii_letters + string.digits
        return {"rabbitUsername": type_, "rabbitPassword": "".join(secrets.choice(alphabet) for _ in range(16))}

    def describe(self) -> str:
        """What is registered, for messages: ``type 'generic' (endpoint 'x')``, ..., or ``none``."""
        return ", ".join(f"type {t!r} (endpoint {v['endpoint']!r})" for t, v in sorted(self.vnfms.items())) or "none"

    def require(self, vnfm_type: str | None) -> str:
        """The endpoint of the registered VNFM of that type (the VNFD's ``endpoint`` is the VNFM type, as
        the Java NFVO reads it); :class:`NoVnfm` naming the type and what is registered when there is none."""
        key = vnfm_type or "generic"
        known = self.vnfms.get(key)
        if known is None:
            raise NoVnfm(f"no VNFM of type {key!r} is registered (the VNFD's endpoint names the VNFM type); "
                         f"registered: {self.describe()}")
        return str(known["endpoint"])

    def endpoint_for(self, vnfm_type: str | None) -> str:
        """The queue of the VNFM of that type: its registered endpoint, else the type itself."""
        key = vnfm_type or "generic"
        known = self.vnfms.get(key)
        return str(known["endpoint"]) if known else key

    async def wait_for(self, vnfm_type: str, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until a VNFM of that type is registered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while vnfm_type not in self.vnfms:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return True
