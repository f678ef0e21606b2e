"""VNFM <-> EMS commands and replies (``JsonUtils`` envelopes and ``generate_response``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from gvnfm.catalogue.wire_json import loads_wire

EMS_ACTIONS = ("SAVE_SCRIPTS", "CLONE_SCRIPTS", "EXECUTE", "SCRIPTS_UPDATE", "SAVE_VNFR_DEPENDENCY",
               "REPO_SCRIPTS_UPDATE")

DEFAULT_SCRIPTS_PATH = "/opt/openbaton/scripts"
#: The largest per-command ``timeout`` accepted (seconds, 30 days): anything above is a mistake or an attack.
MAX_TIMEOUT_SECONDS = 30 * 86400.0

#: ``{"action", "payload", "env"?, "name"?, "script-path"?}``; ``timeout`` is a gvnfm extension
#: (seconds) that a reference EMS ignores. Other keys are kept and ignored.
EmsCommand = TypedDict("EmsCommand", {"action": str, "payload": Any, "env": "dict[str, str] | None",
                                      "name": "str | None", "script-path": "str | None",
                                      "timeout": "float | None"}, total=False)


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
