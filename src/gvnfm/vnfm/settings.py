"""VNFM settings (pydantic-settings): defaults < config file < environment (GVNFM_*) < command-line flags.

The config file is a Java properties file (read as Java reads it, see :mod:`gvnfm.configfile`) with the
reference's keys (``vnfm.endpoint``, ``vnfm.ems.start.timeout``, ``spring.rabbitmq.host``, ...) or
gvnfm's own keys (``endpoint=``, ``broker=``, ``http.listen`` ...); both map onto the same fields.
``${...}`` placeholders are resolved (environment, other keys, default) or refused; an unknown key is
an error naming the closest known one; reference keys gvnfm does not use get one warning.
"""

from __future__ import annotations

import builtins
import contextvars
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from gvnfm import __version__
from gvnfm.catalogue.queues import EXCHANGE
from gvnfm.configfile import ConfigFileError, classify_keys, read_java_properties, render_settings, resolve_value

log = logging.getLogger(__name__)


class VnfmSettings(BaseSettings):
    """Built directly (``VnfmSettings(...)``) it takes only its arguments; :func:`load_settings` adds the
    file and the environment underneath them."""

    model_config = SettingsConfigDict(env_prefix="GVNFM_", extra="ignore", validate_default=False)

    broker: str = "memory://default"          # amqp://user:pass@host:port/vhost or memory://name
    ems_broker: str | None = None             # broker URL for EMS traffic (default: ``broker``)
    exchange: str = EXCHANGE
    endpoint: str = "generic"
    type: str = "generic"
    description: str = "gvnfm Generic VNFM"
    db: str | None = None                     # SQLAlchemy URL; None = SQLite in state_dir
    state_dir: Path = Field(default_factory=lambda: Path(os.environ.get("GVNFM_STATE_DIR", ".gvnfm")))
    log_level: str = "INFO"
    register_with_nfvo: bool = True
    register_tries: int = 20
    register_pause: float = 2.5
    # a refused connection with the NFVO's credentials (its broker user not created yet): retried after
    # each of these pauses (seconds; ``vnfm.connect.auth.retry.delays=40,80,160``)
    nfvo_auth_retry_delays: list[float] = Field(default_factory=lambda: [40.0, 80.0, 160.0])
    # queues
    # the endpoint queue and ems.<endpoint>.register, flagged as the reference does (durable, auto-delete):
    # auto_delete=False keeps messages while no worker consumes, but a reference VNFM started later on
    # that broker fails (PRECONDITION_FAILED) and the NFVO no longer sees a dead VNFM go inactive
    endpoint_queue_durable: bool = True
    endpoint_queue_auto_delete: bool = True
    # NFVO messages handled at once by this worker (the prefetch of the endpoint queue): the NFVO sends
    # one INSTANTIATE per VNFR of an NSR at once, and each waits for its answer
    consumers: int = 256
    # EMS / user-data
    ems_username: str = "admin"
    ems_password: str = "openbaton"
    ems_version: str = ""                     # EMS_VERSION of the user-data; gates SAVE_VNFR_DEPENDENCY
    ems_package_version: str = __version__    # gvnfm version the user-data installs on a VM ("" = latest)
    ems_heartbeat: int = 120
    ems_autodelete: bool = True
    scripts_path: str = "/opt/openbaton/scripts"
    userdata_file: Path | None = None
    ems_host_users: bool = True               # a broker user per EMS host (RabbitMQ management API)
    broker_management_url: str | None = None  # default: http://<broker user>@<broker host>:15672
    # time bounds (seconds)
    ems_start_timeout: float = 500.0          # EMS registration deadline (vnfm.ems.start.timeout)
    ems_command_timeout: float = 1000.0       # non-script EMS commands (the reference's RPC budget)
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
    # operations
    http_listen: str | None = None            # host:port of /healthz, /readyz, /metrics (vnfm.http.listen); off
    log_format: Literal["text", "json"] = "text"   # text (logfmt) or json (vnfm.log.format)

    @field_validator("http_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value:
            from gvnfm.ops.http import parse_listen

            parse_listen(value)      # ValueError: "... is not HOST:PORT"
        return value or None

    @classmethod
    def settings_customise_sources(cls, settings_cls: builtins.type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        layers = _LAYERS.get()
        if layers is None:
            return (init_settings,)
        file_values, environ = layers
        return (init_settings, _MappingEnvSource(settings_cls, environ), _FileSource(settings_cls, file_values))

    @field_validator("nfvo_auth_retry_delays", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return [v for v in value.replace(" ", "").split(",") if v] if isinstance(value, str) else value

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
    "vnfm.rabbitmq.durable": "endpoint_queue_durable", "vnfm.connect.tries": "register_tries",
    "vnfm.connect.auth.retry.delays": "nfvo_auth_retry_delays",
    "vnfm.ems.command.timeout": "ems_command_timeout", "vnfm.ems.script.timeout": "script_timeout",
    "vnfm.ems.host.users": "ems_host_users", "vnfm.rabbitmq.management.url": "broker_management_url",
}
_SPRING_BROKER = ("spring.rabbitmq.host", "spring.rabbitmq.port", "spring.rabbitmq.username",
                  "spring.rabbitmq.password", "spring.rabbitmq.virtual-host")


# keys of the reference's application.properties (and the vnfm-sdk's) that gvnfm reads nowhere
_REFERENCE_IGNORED = frozenset({
    "vnfm.endpoint.type", "vnfm.enabled", "vnfm.rabbitmq.brokerIp", "vnfm.rabbitmq.exclusive",
    "vnfm.rabbitmq.minConcurrency", "vnfm.rabbitmq.maxConcurrency", "vnfm.rabbitmq.virtual-host",
    "vnfm.ems.script.logpath", "vnfm.connect.tries.retryPause",
    "vnfm.connect.tries.authentication", "vnfm.connect.tries.authentication.retryPause",
    "spring.rabbitmq.requested-heartbeat", "spring.rabbitmq.addresses", "spring.rabbitmq.dynamic",
    "spring.rabbitmq.virtualHost", "spring.rabbitmq.listener.concurrency", "spring.rabbitmq.listener.max-concurrency",
    "rabbitmq.host", "rabbitmq.username", "rabbitmq.password", "rabbitmq.port",
    "allocate", "enabled", "endpoint-type", "scriptIndex-max-time", "transacted",
})
_REFERENCE_IGNORED_PREFIXES = ("logging.", "spring.activemq.", "spring.datasource.", "spring.jpa.",
                               "spring.rabbitmq.listener.", "spring.rabbitmq.ssl.", "spring.rabbitmq.template.",
                               "spring.http.", "spring.main.", "spring.application.", "server.", "management.",
                               "endpoints.")
_LAYERS: contextvars.ContextVar[tuple[dict[str, Any], Mapping[str, str]] | None] = contextvars.ContextVar(
    "vnfm_settings_layers", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """``GVNFM_*`` variables of a given mapping (``os.environ`` by default)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {(k if self.case_sensitive else k.lower()): v for k, v in self._environ.items()
                if not (self.env_ignore_empty and v == "")}


class _FileSource(PydanticBaseSettingsSource):
    """The properties file's values, already mapped to field names (below the environment)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _field_of(key: str) -> str | None:
    if key in _KEYS:
        return _KEYS[key]
    name = key.replace("-", "_").replace(".", "_")
    if name in VnfmSettings.model_fields:
        return name
    if key.startswith("vnfm."):  # vnfm.http.listen, vnfm.log.format: gvnfm's keys under the reference prefix
        name = name[len("vnfm_"):]
        return name if name in VnfmSettings.model_fields else None
    return None


def _used(key: str) -> bool:
    return key in _SPRING_BROKER or _field_of(key) is not None


def _reference_ignored(key: str) -> bool:
    return key in _REFERENCE_IGNORED or key.startswith(_REFERENCE_IGNORED_PREFIXES)


def read_properties(path: Path, environ: Mapping[str, str] | None = None, *, warn: bool = True) -> dict[str, str]:
    """The keys gvnfm uses of a Java properties file, placeholders resolved; raises
    :class:`ConfigFileError` for an unknown key or an unresolvable placeholder, and logs one warning
    naming the reference's keys that gvnfm ignores."""
    raw = read_java_properties(path)
    env = os.environ if environ is None else environ
    known = [*_KEYS, *_SPRING_BROKER, *VnfmSettings.model_fields, *_REFERENCE_IGNORED]
    ignored = classify_keys(raw, _used, _reference_ignored, known, os.fspath(path))
    if ignored and warn:
        log.warning("event=config_keys_ignored file=%s keys=%s", os.fspath(path), ",".join(ignored))
    return {k: resolve_value(k, raw, env).strip() for k in raw if _used(k)}


def _from_mapping(values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = _field_of(key)
        if name is not None:
            out[name] = value
    if any(k in values for k in _SPRING_BROKER):
        user = quote(values.get("spring.rabbitmq.username", "guest"), safe="")
        pw = quote(values.get("spring.rabbitmq.password", "guest"), safe="")
        vhost = quote(values.get("spring.rabbitmq.virtual-host", "/"), safe="")
        out.setdefault("broker", f"amqp://{user}:{pw}@{values.get('spring.rabbitmq.host', 'localhost')}:"
                                 f"{values.get('spring.rabbitmq.port', '5672')}/{vhost}")
    return out


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> VnfmSettings:
    """Defaults < ``config`` < ``GVNFM_*`` of ``environ`` (default ``os.environ``) < ``overrides`` (flags;
    None values are ignored). Raises :class:`ConfigFileError` for a bad file, pydantic's
    ValidationError for a bad value."""
    env = os.environ if environ is None else environ
    file_values = _from_mapping(read_properties(config, env)) if config is not None else {}
    token = _LAYERS.set((file_values, env))
    try:
        return VnfmSettings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    finally:
        _LAYERS.reset(token)


def settings_sources(config: Path | None, overrides: Mapping[str, Any] | None,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Field -> where its effective value came from (``file``, ``env GVNFM_X``, ``flag``), for
    ``--check-config``; fields absent are defaults."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    if config is not None:
        out.update(dict.fromkeys(_from_mapping(read_properties(config, env, warn=False)), f"file {config}"))
    upper = {k.upper(): k for k in env}
    for name in VnfmSettings.model_fields:
        if f"GVNFM_{name.upper()}" in upper:
            out[name] = f"env {upper[f'GVNFM_{name.upper()}']}"
    out.update({k: "flag" for k, v in (overrides or {}).items() if v is not None})
    return out


def describe_settings(settings: VnfmSettings, sources: Mapping[str, str] | None = None) -> str:
    """The effective settings, one per line, secrets masked (``gvnfm vnfm --check-config``)."""
    return render_settings(settings.model_dump(), sources)


__all__ = ["ConfigFileError", "VnfmSettings", "describe_settings", "load_settings", "read_properties",
           "settings_sources"]
