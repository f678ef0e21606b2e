"""The user-data that installs and starts the EMS on a VM (§2.5 of the behaviour reference).

``render`` fills the template's ``export X=`` lines the way the reference does (plain prefix
replacement), but shell-quotes every value: the reference pastes values unquoted into a shell script.
``parse`` reads the values back (the local VIMs use it to configure the EMS they start).
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass
from importlib import resources

from gvnfm.catalogue.queues import EXCHANGE


@dataclass(frozen=True)
class EmsBootstrap:
    broker_ip: str
    broker_port: int
    username: str
    password: str
    exchange: str = EXCHANGE
    heartbeat: int = 60
    autodelete: bool = True
    endpoint: str = "generic"
    ems_version: str = ""           # EMS_VERSION, as the reference writes it (vnfm.ems.version)
    package_version: str = ""       # GVNFM_VERSION: the gvnfm release pip installs on the VM ("" = latest)
    monitoring_ip: str = ""
    timezone: str = ""
    virtual_host: str = ""          # gvnfm extension: the broker's virtual host when not "/"
    protocol: str = ""              # gvnfm extension: "stomp"/"stomp+ssl"/"amqps": the EMS broker's own protocol
    host_user: bool = False         # gvnfm extension: USERNAME/PASSWORD are this VM's own broker user
    broker_ca: str = ""             # gvnfm extension: the PEM of the CA of a TLS EMS broker (EMS_BROKER_CA, base64)


def template() -> str:
    return resources.files("gvnfm.catalogue").joinpath("user-data.sh").read_text()


def render(boot: EmsBootstrap, extra: str | None = None, text: str | None = None) -> str:
    values = {
        "MONITORING_IP": boot.monitoring_ip,
        "TIMEZONE": boot.timezone,
        "BROKER_IP": boot.broker_ip,
        "BROKER_PORT": str(boot.broker_port),
        "USERNAME": boot.username,
        "PASSWORD": boot.password,
        "EXCHANGE_NAME": boot.exchange,
        "EMS_HEARTBEAT": str(boot.heartbeat),
        "EMS_AUTODELETE": "true" if boot.autodelete else "false",
        "EMS_VERSION": boot.ems_version,
        "GVNFM_VERSION": boot.package_version,
        "ENDPOINT": boot.endpoint,
        "VIRTUAL_HOST": "" if boot.virtual_host in ("", "/") else boot.virtual_host,
        "EMS_PROTOCOL": boot.protocol,
        "EMS_HOST_USER": "true" if boot.host_user else "",
        # base64: one line of [A-Za-z0-9+/=], which every shell and the prefix replacement keep whole
        "EMS_BROKER_CA": base64.b64encode(boot.broker_ca.encode("ascii")).decode() if boot.broker_ca else "",
    }
    out = []
    for line in (text if text is not None else template()).splitlines():
        for key, value in values.items():
            if line == f"export {key}=":
                line = f"export {key}={shlex.quote(value)}"
                break
        out.append(line)
    result = "\n".join(out) + "\n"
    if extra:
        # A package's own user-data.sh is appended verbatim (BOM stripped), as the reference does.
        result += extra.lstrip("\ufeff")
    return result


def takes_host_user(text: str | None = None) -> bool:
    """Whether a template passes a host user on to the EMS (its ``export EMS_HOST_USER=`` line): an EMS
    with a host user must know it, its registration and replies go through the exchange."""
    return "export EMS_HOST_USER=" in (text if text is not None else template()).splitlines()


def set_hostname(userdata: str, hostname: str) -> str:
    """What the NFVO does per VM: ``#Hostname=`` becomes ``Hostname=<hostname>``."""
    return userdata.replace("#Hostname=", f"Hostname={shlex.quote(hostname)}")


def parse(userdata: str) -> dict[str, str]:
    """The ``export X=value`` assignments of a rendered user-data, unquoted."""
    found: dict[str, str] = {}
    for line in userdata.splitlines():
        line = line.strip()
        if not line.startswith("export ") or "=" not in line:
            continue
        key, _, raw = line[len("export "):].partition("=")
        if not key.replace("_", "").isalnum():
            continue
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue
        found[key] = parts[0] if parts else ""
    return found
