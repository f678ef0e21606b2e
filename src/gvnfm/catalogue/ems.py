"""VNFM <-> EMS commands and replies (``JsonUtils`` envelopes and ``generate_response``), and the EMS's
registration.

No pydantic: the EMS agent imports this module (a TypedDict command, a dataclass reply; docs/performance.md,
*A light EMS*). The command constructors give the keys in the order the VNFM has always sent them: the EMS
recognises a command sent again by its correlation id and its body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from gvnfm.catalogue.wire_json import loads_wire

SAVE_SCRIPTS = "SAVE_SCRIPTS"
CLONE_SCRIPTS = "CLONE_SCRIPTS"
EXECUTE = "EXECUTE"
SCRIPTS_UPDATE = "SCRIPTS_UPDATE"
SAVE_VNFR_DEPENDENCY = "SAVE_VNFR_DEPENDENCY"
#: the reference EMS's name for CLONE_SCRIPTS of an update (no VNFM of gvnfm's sends it)
REPO_SCRIPTS_UPDATE = "REPO_SCRIPTS_UPDATE"
EMS_ACTIONS = (SAVE_SCRIPTS, CLONE_SCRIPTS, EXECUTE, SCRIPTS_UPDATE, SAVE_VNFR_DEPENDENCY, REPO_SCRIPTS_UPDATE)

DEFAULT_SCRIPTS_PATH = "/opt/openbaton/scripts"
#: the EMS broker protocols over TLS (gvnfm extension ``protocol``): where a CA file (``cafile``,
#: ``broker_cafile``, user-data ``EMS_BROKER_CA``) applies
TLS_PROTOCOLS = ("amqps", "stomp+ssl")
#: The largest per-command ``timeout`` accepted (seconds, 30 days): anything above is a mistake or an attack.
MAX_TIMEOUT_SECONDS = 30 * 86400.0

#: ``{"action", "payload", "env"?, "name"?, "script-path"?}``; ``timeout`` is a gvnfm extension
#: (seconds) that a reference EMS ignores. Other keys are kept and ignored.
EmsCommand = TypedDict("EmsCommand", {"action": str, "payload": Any, "env": "dict[str, str] | None",
                                      "name": "str | None", "script-path": "str | None",
                                      "timeout": "float | None"}, total=False)


def execute(script: str, env: dict[str, str]) -> EmsCommand:
    """Run ``script`` (a file name in the scripts folder, with its arguments) with ``env``."""
    return {"action": EXECUTE, "payload": script, "env": env}


def save_scripts(name: str, payload_base64: str, script_path: str, *, action: str = SAVE_SCRIPTS) -> EmsCommand:
    """Write one script file (``action``: SAVE_SCRIPTS, or SCRIPTS_UPDATE for a new version of it)."""
    return {"action": action, "payload": payload_base64, "name": name, "script-path": script_path}


def clone_scripts(link: str, script_path: str) -> EmsCommand:
    """Clone the package's ``scripts-link`` (a git repository) into the scripts folder."""
    return {"action": CLONE_SCRIPTS, "payload": link, "script-path": script_path}


def save_vnfr_dependency(dependency_json: str, script_path: str) -> EmsCommand:
    """Write a VNFRecordDependency as ``ob_parameters.*`` in the scripts folder."""
    return {"action": SAVE_VNFR_DEPENDENCY, "payload": dependency_json, "script-path": script_path}


def registration_body(hostname: str) -> bytes:
    """What an EMS publishes on ``ems.<type>.register``: ``{"hostname": ...}``."""
    return json.dumps({"hostname": hostname}).encode()


@dataclass(slots=True)
class EmsReply:
    """``generate_response`` of the reference EMS: ``{"output", "err", "status"}``.

    A plain dataclass, not a pydantic model: the EMS agent imports this module and must stay light
    (docs/performance.md, *A light EMS*)."""

    output: str = ""
    err: str = ""
    status: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 0

    @classmethod
    def parse(cls, body: bytes | str) -> EmsReply:
        """Read an EMS reply leniently: the reference EMS answers ``None`` for unknown actions
        and can send ``status`` as the string ``"1"``."""
        try:
            data = loads_wire(body)
        except (UnicodeDecodeError, ValueError) as exc:
            # quoted only when tiny (the reference's literal None): a reply carries script output (secrets)
            shown = f" {body!r}" if len(body) <= 8 else f" of {len(body)} bytes"
            return cls(output="", err=f"EMS sent a reply{shown} that is not acceptable JSON ({exc})", status=-1)
        if not isinstance(data, dict):
            return cls(output="", err=f"EMS sent a reply that is not an object but {type(data).__name__}", status=-1)
        try:
            status = int(data.get("status", -1))
        except (TypeError, ValueError, OverflowError):
            status = -1
        if not -(2**31) <= status < 2**31:   # a Java int, as the VNFM's Gson reads it
            status = -1
        return cls(output=str(data.get("output") or ""), err=str(data.get("err") or ""), status=status)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EmsReply:
        """A reply as :meth:`to_wire` wrote it (strict: the EMS's own state file)."""
        return cls(output=str(data.get("output", "")), err=str(data.get("err", "")), status=int(data.get("status", 0)))

    model_validate = from_wire   # the name callers used when this was a pydantic model

    def to_wire(self) -> dict[str, Any]:
        return {"output": self.output, "err": self.err, "status": self.status}

    def to_json(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    def to_body(self) -> bytes:
        """The reply as the EMS sends it: the reference's ``json.dumps`` of ``{"output","err","status"}``."""
        return json.dumps(self.to_wire()).encode()
