"""VNFM settings: defaults < config file < environment (GVNFM_*) < command-line flags.

The config file may be a Spring-style properties file with the reference's keys
(``vnfm.endpoint``, ``vnfm.ems.start.timeout``, ``spring.rabbitmq.host``, ...) or gvnfm's own keys
(``endpoint=``, ``broker=``, ...); both map onto the same fields.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from gvnfm import __version__


class VnfmSettings(BaseModel):
    broker: str = "memory://default"          # amqp://user:pass@host:port/vhost or memory://name
    ems_broker: str | None = None             # broker URL for EMS traffic (default: ``broker``)
    exchange: str = "openbaton-exchange"
    endpoint: str = "generic"
    type: str = "generic"
    description: str = "gvnfm Generic VNFM"
    db: str | None = None                     # SQLAlchemy URL; None = SQLite in state_dir
    state_dir: Path = Field(default_factory=lambda: Path(os.environ.get("GVNFM_STATE_DIR", ".gvnfm")))
    log_level: str = "INFO"
    register_with_nfvo: bool = True
    register_tries: int = 20
    register_pause: float = 2.5
    # queues
    endpoint_queue_durable: bool = True
    endpoint_queue_auto_delete: bool = False  # reference: true (loses messages while no consumer)
    consumers: int = 16                       # NFVO messages handled at once by this worker
    # EMS / user-data
    ems_username: str = "admin"
    ems_password: str = "openbaton"
    ems_version: str = ""                     # EMS_VERSION of the user-data; gates SAVE_VNFR_DEPENDENCY
    ems_package_version: str = __version__    # gvnfm version the user-data installs on a VM ("" = latest)
    ems_heartbeat: int = 120
    ems_autodelete: bool = True
    scripts_path: str = "/opt/openbaton/scripts"
    userdata_file: Path | None = None
    # time bounds (seconds)
    ems_start_timeout: float = 500.0          # EMS registration deadline (vnfm.ems.start.timeout)
    ems_command_timeout: float = 120.0        # non-script EMS commands
    script_timeout: float = 1800.0            # one script
    operation_timeout: float = 7200.0         # one whole operation
    nfvo_timeout: float = 1000.0              # GRANT / ALLOCATE / SCALING answers (vnfm.rabbitmq.sar.timeout)
    lease_seconds: float = 15.0               # how long a worker's claim on an operation lasts unrenewed
    max_delivery_failures: int = 5            # failed handlings of one NFVO message before it is answered ERROR
    redelivery_pause: float = 1.0             # before giving a failed message back: this × its failures (≤ 10 s)
    # parallelism
    concurrency: int = 32                     # VNFCs of one step in parallel, per operation
    max_inflight_commands: int = 512          # EMS commands in flight, VNFM-wide
    # script logs
    script_log_minutes: float = 180.0         # retention (vnfm.ems.script.old); 0 keeps them forever
    script_log_prune_interval: float = 180.0  # seconds between prunings

    def ems_broker_url(self) -> str:
        return self.ems_broker or self.broker

    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite+aiosqlite:///{(self.state_dir / 'gvnfm.db').resolve()}"


# reference (Spring) keys and gvnfm keys -> field
_KEYS = {
    "vnfm.endpoint": "endpoint", "vnfm.type": "type", "vnfm.description": "description",
    "vnfm.consumers.num": "consumers", "vnfm.rabbitmq.sar.timeout": "nfvo_timeout",
    "vnfm.ems.start.timeout": "ems_start_timeout", "vnfm.ems.username": "ems_username",
    "vnfm.ems.password": "ems_password", "vnfm.ems.version": "ems_version",
    "vnfm.ems.package.version": "ems_package_version",
    "vnfm.ems.queue.heartbeat": "ems_heartbeat", "vnfm.ems.queue.autodelete": "ems_autodelete",
    "vnfm.ems.script.old": "script_log_minutes", "vnfm.ems.userdata.filepath": "userdata_file",
    "script-path": "scripts_path", "vnfm.rabbitmq.autodelete": "endpoint_queue_auto_delete",
    "vnfm.rabbitmq.durable": "endpoint_queue_durable",
}
_SPRING_BROKER = ("spring.rabbitmq.host", "spring.rabbitmq.port", "spring.rabbitmq.username",
                  "spring.rabbitmq.password", "spring.rabbitmq.virtual-host")


def read_properties(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!", "[")):
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            continue
        values[line[:sep].strip()] = line[sep + 1:].strip()
    return values


def _from_mapping(values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = VnfmSettings.model_fields
    for key, value in values.items():
        name = _KEYS.get(key) or key.replace("-", "_").replace(".", "_")
        if name in fields:
            out[name] = value
    if any(k in values for k in _SPRING_BROKER):
        user = quote(values.get("spring.rabbitmq.username", "guest"), safe="")
        pw = quote(values.get("spring.rabbitmq.password", "guest"), safe="")
        vhost = quote(values.get("spring.rabbitmq.virtual-host", "/"), safe="")
        out.setdefault("broker", f"amqp://{user}:{pw}@{values.get('spring.rabbitmq.host', 'localhost')}:"
                                 f"{values.get('spring.rabbitmq.port', '5672')}/{vhost}")
    return out


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> VnfmSettings:
    data: dict[str, Any] = {}
    if config is not None:
        data.update(_from_mapping(read_properties(config)))
    env = os.environ if environ is None else environ
    for name in VnfmSettings.model_fields:
        key = f"GVNFM_{name.upper()}"
        if key in env:
            data[name] = env[key]
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return VnfmSettings.model_validate(data)
