"""The VNFMs registered with the orchestrator (protocol §2): ``register`` answers broker credentials
and remembers the VNFM's endpoint by type; ``unregister`` (or ``deregister``) with the right password
forgets it. A message without ``action`` or ``type`` gets no answer."""

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
        #: type -> {"endpoint": queue name, "description": vnfmManagerEndpoint, "credentials": {...}}
        self.vnfms: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()

    def handle(self, data: Any) -> dict[str, str] | None:
        """Apply one registration message; returns the answer to send (None = no answer)."""
        action = data.get("action") if isinstance(data, dict) else None
        type_ = data.get("type") if isinstance(data, dict) else None
        if not action or not type_ or not isinstance(data, dict):
            log.warning("event=registration_ignored reason=no_action_or_type")
            return None
        type_ = str(type_)
        if action == "register":
            creds = self._credentials_for(type_)
            described = data.get("vnfmManagerEndpoint")
            endpoint = described if isinstance(described, dict) else {}
            self.vnfms[type_] = {"endpoint": str(endpoint.get("endpoint") or type_), "description": endpoint,
                                 "credentials": creds}
            self._changed.set()
            log.info("event=vnfm_registered type=%s endpoint=%s", type_, self.vnfms[type_]["endpoint"])
            return creds
        if action in ("unregister", "deregister"):
            known = self.vnfms.get(type_)
            if known is None:
                log.warning("event=unregister_unknown type=%s", type_)
            elif data.get("password") != known["credentials"].get("rabbitPassword"):
                log.warning("event=unregister_refused type=%s reason=wrong_password", type_)
            else:
                del self.vnfms[type_]
                log.info("event=vnfm_unregistered type=%s", type_)
            return None
        log.warning("event=registration_ignored action=%r type=%s", action, type_)
        return None

    def _credentials_for(self, type_: str) -> dict[str, str]:
        if self.credentials is not None:
            user, password = self.credentials
            return {"rabbitUsername": user, "rabbitPassword": password}
        known = self.vnfms.get(type_)
        if known is not None:                       # registering again: the stored credentials
            return dict(known["credentials"])
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
