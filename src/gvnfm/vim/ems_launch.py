"""How a local VIM starts a host's EMS: the values the user-data script would write to
``/etc/openbaton/openbaton-ems.properties`` (§2.5 of the behaviour reference), read from the user-data;
and the CA of a TLS EMS broker that it would write to ``/etc/openbaton/ems-broker-ca.pem``."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gvnfm.catalogue import userdata as userdata_mod
from gvnfm.catalogue.ems import TLS_PROTOCOLS
from gvnfm.catalogue.queues import EXCHANGE
from gvnfm.redact import mask_urls
from gvnfm.vim.base import VimError

PROPERTIES_PATH = "/etc/openbaton/openbaton-ems.properties"
#: where the user-data script writes the CA of a TLS EMS broker (``EMS_BROKER_CA``), named in ``broker_cafile``
BROKER_CA_PATH = "/etc/openbaton/ems-broker-ca.pem"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "ip6-localhost"}


@dataclass(frozen=True)
class EmsLaunch:
    broker_ip: str
    broker_port: int
    username: str
    password: str
    hostname: str
    type: str = "generic"
    exchange: str = EXCHANGE
    heartbeat: int = 60
    autodelete: bool = True
    virtual_host: str = "/"
    host_user: bool = False         # the credentials are this host's own broker user (EMS_HOST_USER)
    protocol: str = ""              # gvnfm extension: "amqps"/"stomp"/"stomp+ssl" ("" = amqp)
    broker_cafile: str = ""         # gvnfm extension: the CA file of a TLS broker ("" = the system's CAs)
    broker_ca: str = ""             # gvnfm extension: the PEM of that CA the user-data carries (EMS_BROKER_CA)

    @staticmethod
    def starts_ems(userdata: str) -> bool:
        """Whether the user-data starts an EMS at all: it sets ``BROKER_IP`` (gvnfm's and the reference's
        EMS bootstrap do). Any other user-data (python-vnfm-sdk's ``none``, a script of the VNF's own)
        gives a host without an EMS, as a VM booted with it would be."""
        return bool(userdata_mod.parse(userdata or "").get("BROKER_IP", "").strip())

    @classmethod
    def from_userdata(cls, userdata: str, hostname: str) -> EmsLaunch:
        values = userdata_mod.parse(userdata or "")
        broker_ip = values.get("BROKER_IP", "").strip()
        if not broker_ip:
            raise VimError(f"host {hostname}: the user-data has no BROKER_IP, the EMS would not know its broker")
        try:
            port = int(values.get("BROKER_PORT") or 5672)
            heartbeat = int(values.get("EMS_HEARTBEAT") or 60)
        except ValueError as exc:
            raise VimError(f"host {hostname}: bad number in the user-data ({exc})") from None
        if not 0 < port < 65536:
            raise VimError(f"host {hostname}: BROKER_PORT {port} is not a TCP port")
        try:
            broker_ca = base64.b64decode(values.get("EMS_BROKER_CA", ""), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            raise VimError(f"host {hostname}: EMS_BROKER_CA in the user-data is not the base64 of a PEM file") from None
        return cls(broker_ip=broker_ip, broker_port=port, username=values.get("USERNAME", ""),
                   password=values.get("PASSWORD", ""), hostname=hostname,
                   type=values.get("ENDPOINT") or "generic",
                   exchange=values.get("EXCHANGE_NAME") or EXCHANGE, heartbeat=heartbeat,
                   # only the literal "false" disables auto-delete, as in the reference EMS
                   autodelete=values.get("EMS_AUTODELETE", "true") != "false",
                   virtual_host=values.get("VIRTUAL_HOST") or "/", protocol=values.get("EMS_PROTOCOL") or "",
                   host_user=values.get("EMS_HOST_USER", "") == "true", broker_ca=broker_ca)

    def replace(self, **changes: Any) -> EmsLaunch:
        return dataclasses.replace(self, **changes)

    def with_broker_url(self, url: str) -> EmsLaunch:
        """Broker address, credentials, virtual host (and protocol) from an ``amqp://`` or ``stomp://``
        ``user:pass@host:port/vhost`` URL (the parts the URL has); over TLS (``amqps://``, ``stomp+ssl://``)
        also its ``cafile``, which the EMS verifies the broker with. A host user's credentials (the VM's
        own) are kept."""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps", "stomp", "stomp+ssl") or not parts.hostname:
            raise VimError(f"broker URL {mask_urls(url)!r} is not amqp:// or stomp://user:password@host:port/")
        stomp = parts.scheme.startswith("stomp")
        cafile = parse_qs(parts.query).get("cafile", [""])[-1] if parts.scheme in TLS_PROTOCOLS else ""
        changes: dict[str, Any] = {"broker_ip": parts.hostname, "broker_cafile": cafile,
                                   "protocol": "" if parts.scheme == "amqp" else parts.scheme}
        if parts.port:
            changes["broker_port"] = parts.port
        elif stomp:
            changes["broker_port"] = 61613
        elif parts.scheme == "amqps":
            changes["broker_port"] = 5671
        if parts.username is not None and not self.host_user:
            changes["username"] = unquote(parts.username)
        if parts.password is not None and not self.host_user:
            changes["password"] = unquote(parts.password)
        vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
        if vhost:
            changes["virtual_host"] = unquote(vhost)
        return self.replace(**changes)

    def ca_to_write(self) -> str | None:
        """The PEM the host must hold at :data:`BROKER_CA_PATH` and name in ``broker_cafile``, as the
        user-data script does: the user-data's CA, for a TLS broker whose URL names no CA file of the
        VIM's own; None otherwise (plain AMQP or STOMP has no CA; a ``cafile`` of the VIM's broker URL
        wins)."""
        if self.broker_ca and self.protocol in TLS_PROTOCOLS and not self.broker_cafile:
            return self.broker_ca
        return None

    @property
    def broker_is_loopback(self) -> bool:
        return self.broker_ip in LOOPBACK_NAMES or self.broker_ip.startswith("127.")

    def properties(self, extra: Mapping[str, str] | None = None) -> str:
        """The ``[ems]`` file, exactly as the user-data script writes it, plus ``extra`` keys (gvnfm
        extensions, ignored by a reference EMS). Values are written raw, as the script does; a value
        with a line break could smuggle in other keys and is refused."""
        fields = {"broker_ip": self.broker_ip, "broker_port": str(self.broker_port), "username": self.username,
                  "password": self.password, "exchange": self.exchange, "heartbeat": str(self.heartbeat),
                  "autodelete": "true" if self.autodelete else "false", "type": self.type,
                  "hostname": self.hostname}
        if self.virtual_host != "/":
            fields["virtual_host"] = self.virtual_host
        if self.protocol:
            fields["protocol"] = self.protocol
        if self.broker_cafile:
            fields["broker_cafile"] = self.broker_cafile
        if self.host_user:
            fields["host_user"] = "true"
        fields.update(extra or {})
        for key, value in fields.items():
            if "\n" in value or "\r" in value:
                raise VimError(f"host {self.hostname}: EMS setting {key} contains a line break")
        return "[ems]\n" + "".join(f"{key}={value}\n" for key, value in fields.items())
