"""EMS agent configuration: the reference's ``openbaton-ems.properties`` keys plus gvnfm extras.

Merge order (later wins): defaults < properties file < environment (``GVNFM_EMS_<KEY>``) < flags.

Reference keys (section ``[ems]``, ``EMS/ems.py:57-78``): ``broker_ip``, ``broker_port`` (5672),
``username``, ``password``, ``hostname``, ``type`` (generic), ``autodelete`` (only the literal ``false``
disables it), ``exchange`` (openbaton-exchange), ``heartbeat`` (60), ``virtual_host`` (/).
gvnfm extensions: ``protocol`` (amqp, amqps, stomp, stomp+ssl; a ``broker_port`` of 61613 alone means
stomp); ``broker_cafile`` (optional, ``amqps`` and ``stomp+ssl`` only: the PEM file of the CA that signed
the broker's certificate, a private CA; unset, the system's CAs are trusted; it becomes the URL's
``?cafile=``).

Differences from the reference, on purpose:
- the file is read without ``%`` interpolation (a password with ``%`` works);
- ``broker_ip`` defaults to 127.0.0.1 and ``hostname`` to this machine's host name (the reference
  crashes without them); ``username``/``password`` default to Open Baton's ``admin``/``openbaton``.

Directories: ``scripts_path``, ``log_dir`` and ``state_dir`` default to ``/opt/openbaton/scripts``,
``/var/log/openbaton`` and ``/var/lib/gvnfm/ems``. When ``root`` is set (process-VIM hosts, no root
privileges needed) the defaults become ``<root>/scripts``, ``<root>/log`` and ``<root>/state``, and a
relative value is taken relative to ``root``; an absolute value is used as given.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from gvnfm.catalogue.ems import DEFAULT_SCRIPTS_PATH, TLS_PROTOCOLS
from gvnfm.catalogue.queues import EXCHANGE, ems_actions_queue, ems_register_queue
from gvnfm.configfile import ConfigFileError, classify_keys

log = logging.getLogger(__name__)

DEFAULT_PROPERTIES = "/etc/openbaton/openbaton-ems.properties"
ENV_PREFIX = "GVNFM_EMS_"
#: STOMP's registered port: a ``broker_port`` of 61613 without ``protocol`` means STOMP.
STOMP_PORT = 61613
PROTOCOLS = ("amqp", "amqps", "stomp", "stomp+ssl")
DIR_FIELDS = ("scripts_path", "log_dir", "state_dir")
_DEFAULT_DIRS = {"scripts_path": DEFAULT_SCRIPTS_PATH, "log_dir": "/var/log/openbaton",
                 "state_dir": "/var/lib/gvnfm/ems"}
_ROOT_DIRS = {"scripts_path": "scripts", "log_dir": "log", "state_dir": "state"}
SECRET_FIELDS = frozenset({"password", "broker_url"})


class ConfigError(ValueError):
    """The configuration is unusable (bad value, unreadable file)."""


def _name(value: Any) -> str:
    value = str(value).strip()
    if not value or value in {".", ".."} or any(c in value for c in "/\x00 \t\r\n"):
        raise ValueError(f"{value!r} is not usable as a name (empty, '/', whitespace)")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else str(value)


def _bool(value: Any) -> bool:
    # The reference: ``auto_delete = (autodelete != 'false')`` -- anything but "false" is true.
    if isinstance(value, str):
        return value.strip().lower() != "false"
    if isinstance(value, bool | int):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def _extra_env(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError("must be a JSON object of strings")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _protocol(value: Any) -> str | None:
    value = _optional(value)
    if value is not None and value.strip().lower() not in PROTOCOLS:
        raise ValueError(f"{value!r} is not one of {', '.join(PROTOCOLS)}")
    return None if value is None else value.strip().lower()


def _flag(value: Any) -> bool:
    """A gvnfm flag: true only when it says so (``true``, ``1``, ``yes``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, bool | int):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def _roots(value: Any) -> list[str]:
    if isinstance(value, str):
        return [p for p in value.replace(",", os.pathsep).split(os.pathsep) if p.strip()]
    return [str(p) for p in value]


def _number(kind: type, *, ge: float | None = None, gt: float | None = None, le: float | None = None
            ) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not {'an integer' if kind is int else 'a number'}")
        try:
            number = kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not {'an integer' if kind is int else 'a number'}") from None
        if (ge is not None and number < ge) or (gt is not None and number <= gt) or (le is not None and number > le):
            bounds = [f"≥ {ge:g}" if ge is not None else "", f"> {gt:g}" if gt is not None else "",
                      f"≤ {le:g}" if le is not None else ""]
            raise ValueError(f"{number!r} is out of range ({', '.join(b for b in bounds if b)})")
        return number
    return convert


#: How each field is read (strings from a properties file or the environment included); fields not
#: named here are plain strings.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "broker_port": _number(int, ge=1, le=65535), "heartbeat": _number(int, ge=0), "autodelete": _bool,
    "hostname": _name, "type": _name, "run_as": _optional, "broker_url": _optional, "root": _optional,
    "extra_env": _extra_env, "allowed_script_roots": _roots, "script_timeout": _number(float, gt=0),
    "max_output_bytes": _number(int, ge=1024), "prefetch": _number(int, ge=1),
    "reconnect_max": _number(float, gt=0), "result_cache_entries": _number(int, ge=1),
    "result_cache_bytes": _number(int, ge=1024), "result_max_age": _number(float, gt=0),
    "kill_grace": _number(float, ge=0), "protocol": _protocol, "host_user": _flag, "broker_cafile": _optional,
}


@dataclass
class EmsConfig:
    """The agent's settings, validated and normalised on construction (a :class:`ConfigError`, which is
    a ``ValueError``, names the bad field). A plain dataclass on purpose: the agent runs on every VM and
    imports nothing it does not use (no pydantic; docs/performance.md, *A light EMS*)."""

    # -- the reference's keys --------------------------------------------------------------------
    broker_ip: str = "127.0.0.1"
    broker_port: int = 5672
    username: str = "admin"
    password: str = field(default="openbaton", repr=False)
    hostname: str = field(default_factory=socket.gethostname)
    type: str = "generic"
    autodelete: bool = True
    exchange: str = EXCHANGE
    heartbeat: int = 60
    virtual_host: str = "/"
    # -- gvnfm extras ------------------------------------------------------------------------------
    protocol: str | None = None
    """The broker protocol (a gvnfm extension): ``amqp``, ``amqps`` (AMQP over TLS), ``stomp`` or
    ``stomp+ssl`` (RabbitMQ's STOMP plugin or ActiveMQ). Unset: ``stomp`` when ``broker_port`` is STOMP's
    61613, else ``amqp``."""
    broker_cafile: str | None = None
    """``protocol=amqps`` or ``stomp+ssl``: the CA file (PEM) the broker's certificate is verified with (the
    URL's ``cafile``); unset: the system's CAs. The certificate and the host name are always verified."""
    host_user: bool = False
    """The broker user is this host's own (made by gvnfm's VNFM, user-data EMS_HOST_USER): it may not
    write to the default exchange, so the registration and the replies go through ``exchange``, with
    the user as AMQP ``user_id`` (which RabbitMQ checks against the connection)."""
    broker_url: str | None = field(default=None, repr=False)
    """Overrides broker_ip/port/username/password/virtual_host when set (``amqp://...``, ``memory://x``)."""
    root: str | None = None
    scripts_path: str | None = None
    log_dir: str | None = None
    state_dir: str | None = None
    """Folders; None is the default (``_DEFAULT_DIRS``, or below ``root``). Always set after construction."""
    allowed_script_roots: list[str] = field(default_factory=list)
    """Folders besides ``scripts_path`` under which a message's ``script-path`` is honoured."""
    script_timeout: float = 1800.0
    max_output_bytes: int = 1024 * 1024
    run_as: str | None = None
    prefetch: int = 16
    extra_env: dict[str, str] = field(default_factory=dict)
    """Added to the agent's own environment for scripts: os.environ < extra_env < the VNFM's env."""
    reconnect_max: float = 30.0
    """Cap of the back-off between connection attempts (seconds)."""
    result_cache_entries: int = 1024
    result_cache_bytes: int = 64 * 1024 * 1024
    result_max_age: float = 24 * 3600.0
    """Seconds a finished command's result is returned again for the same correlation id and body
    (memory and ``results.jsonl``); older results are dropped, also on load."""
    kill_grace: float = 2.0
    """Seconds between SIGTERM and SIGKILL of a timed-out script's process group."""

    model_fields: ClassVar[dict[str, dataclasses.Field[Any]]]
    """The field names (the same attribute pydantic models have, for callers that filter keys)."""

    @property
    def broker_user(self) -> str:
        """The user the agent connects as (``broker_url``'s when set)."""
        if self.broker_url and "://" in self.broker_url:
            return unquote(urlsplit(self.broker_url).username or "guest")
        return self.username

    def __post_init__(self) -> None:
        errors = []
        for name, convert in _CONVERT.items():
            try:
                setattr(self, name, convert(getattr(self, name)))
            except (TypeError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
        for name in ("broker_ip", "username", "password", "exchange", "virtual_host", *DIR_FIELDS):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                errors.append(f"{name}: {value!r} is not a string")
        if self.broker_cafile is not None and not errors:
            if self.broker_url:
                errors.append("broker_cafile: not used with broker_url (give ?cafile= in broker_url)")
            elif self._protocol() not in TLS_PROTOCOLS:
                errors.append(f"broker_cafile: needs protocol amqps or stomp+ssl (the protocol is {self._protocol()})")
        if errors:
            raise ConfigError("; ".join(errors))
        self._explicit_dirs = {f for f in DIR_FIELDS if getattr(self, f) is not None}
        root = Path(self.root).absolute() if self.root else None
        if root is not None:
            self.root = str(root)
        for f in DIR_FIELDS:
            value = getattr(self, f)
            if root is not None and f not in self._explicit_dirs:
                path = root / _ROOT_DIRS[f]
            elif root is not None:
                path = root / value
            else:
                path = Path(value if value is not None else _DEFAULT_DIRS[f]).absolute()
            setattr(self, f, os.path.normpath(path))
        self.allowed_script_roots = [os.path.normpath((root or Path.cwd()) / p) for p in self.allowed_script_roots]

    # -- derived -----------------------------------------------------------------------------------
    @property
    def actions_queue(self) -> str:
        return ems_actions_queue(self.hostname)

    @property
    def register_queue(self) -> str:
        return ems_register_queue(self.type)

    def _protocol(self) -> str:
        return self.protocol or ("stomp" if self.broker_port == STOMP_PORT else "amqp")

    def amqp_url(self) -> str:
        """The broker URL: ``broker_url`` when set, else built from the reference keys (and ``protocol``,
        ``broker_cafile``)."""
        if self.broker_url:
            return self.broker_url
        host = f"[{self.broker_ip}]" if ":" in self.broker_ip and not self.broker_ip.startswith("[") else self.broker_ip
        vhost = quote(self.virtual_host, safe="")
        auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        protocol = self._protocol()
        params = [f"heartbeat={self.heartbeat}"] if protocol.startswith("amqp") else []
        if self.broker_cafile:
            params.append(f"cafile={quote(self.broker_cafile, safe='/')}")
        query = f"?{'&'.join(params)}" if params else ""
        return f"{protocol}://{auth}@{host}:{self.broker_port}/{vhost}{query}"

    def model_dump(self, *, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """Every setting as a dict (copies of the lists and dicts)."""
        return {f: _copy(getattr(self, f)) for f in self.model_fields if f not in exclude}

    def redacted(self) -> dict[str, Any]:
        """The settings for a log line: secrets masked, extra_env values hidden."""
        data = self.model_dump()
        for key in SECRET_FIELDS:
            if data.get(key):
                data[key] = "***"
        data["extra_env"] = sorted(self.extra_env)
        return data

    def for_host(self, hostname: str) -> EmsConfig:
        """The configuration of one agent of a ``--hosts N`` fleet: its own hostname, and its own
        scripts/state folders (``<root>/<hostname>/...`` with ``root``, else ``<folder>/<hostname>``)."""
        data = self.model_dump(exclude={"hostname", "root", *DIR_FIELDS, "allowed_script_roots"})
        data["hostname"] = hostname
        data["allowed_script_roots"] = [str(Path(p) / hostname) for p in self.allowed_script_roots]
        if self.root:
            data["root"] = str(Path(self.root) / hostname)
            for f in self._explicit_dirs:
                data[f] = str(Path(getattr(self, f)) / hostname)
        else:
            data["scripts_path"] = str(Path(self.scripts_path) / hostname)  # type: ignore[arg-type]
            data["state_dir"] = str(Path(self.state_dir) / hostname)  # type: ignore[arg-type]
            data["log_dir"] = self.log_dir
        return EmsConfig(**data)


EmsConfig.model_fields = {f.name: f for f in dataclasses.fields(EmsConfig)}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def load_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``[ems]`` section of a reference properties file, without interpolation (keys lower-case).
    The reference EMS reads it with Python's ConfigParser, so this one does too. A key this EMS does not
    know is a :class:`ConfigError` naming the closest known key (the reference would ignore a misspelt
    ``brokerip`` and connect to nothing)."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"cannot read properties file {os.fspath(path)!r}: {exc}") from exc
    if not parser.has_section("ems"):
        raise ConfigError(f"properties file {os.fspath(path)!r} has no [ems] section")
    values = {k.strip().lower(): v.strip() for k, v in parser.items("ems")}
    known = set(EmsConfig.model_fields)
    try:
        classify_keys(values, known.__contains__, lambda _k: False, known, f"{os.fspath(path)} [ems]")
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    return values


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``GVNFM_EMS_<KEY>`` variables (e.g. GVNFM_EMS_BROKER_URL, GVNFM_EMS_HOSTNAME)."""
    environ = os.environ if environ is None else environ
    known = set(EmsConfig.model_fields)
    out: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower()
            if key in known:
                out[key] = value
    return out


def load_config(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None, *,
                environ: Mapping[str, str] | None = None) -> EmsConfig:
    """Defaults < properties file < environment < ``overrides`` (flags; None values are ignored).

    ``path=None`` reads the default file when it exists; an explicitly given file must exist."""
    merged: dict[str, Any] = {}
    if path is None:
        if os.path.exists(DEFAULT_PROPERTIES):
            merged.update(load_properties(DEFAULT_PROPERTIES))
        else:
            log.info("event=ems_config_default_missing file=%s", DEFAULT_PROPERTIES)
    else:
        merged.update(load_properties(path))
        _warn_world_readable(path)
    merged.update(from_env(environ))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(merged) - set(EmsConfig.model_fields))
    if unknown:
        raise ConfigError(f"invalid EMS configuration: unknown setting(s) {', '.join(unknown)}")
    try:
        return EmsConfig(**merged)
    except ValueError as exc:
        raise ConfigError(f"invalid EMS configuration: {exc}") from exc


def _warn_world_readable(path: str | os.PathLike[str]) -> None:
    try:
        if os.stat(path).st_mode & 0o004:
            log.warning("event=ems_config_world_readable file=%s hint='holds broker credentials; chmod 600'",
                        os.fspath(path))
    except OSError:
        pass
