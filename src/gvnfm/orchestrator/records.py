"""The orchestrator's records: the network service record (NSR), per VNFR its status, the VNFR as last
received, the hosts allocated for it, the NFVO action in progress, per-VNFC progress and errors.

VNFR status (``mano/record/Status.java``): NULL → INITIALIZED (instantiated) → INACTIVE (configured)
→ ACTIVE (started) → TERMINATED, or ERROR; SCALING while scaling, RESUMING while resuming. Every change
of a ``VnfrState.status`` goes through ``lifecycle.apply`` (the transition table).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, InstanceOf

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.messages import FailedStep
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord
from gvnfm.orchestrator.loader import ServiceBundle

NULL = "NULL"
INITIALIZED = "INITIALIZED"
INACTIVE = "INACTIVE"
ACTIVE = "ACTIVE"
TERMINATED = "TERMINATED"
ERROR = "ERROR"
SCALING = "SCALING"
RESUMING = "RESUMING"


def now() -> str:
    return datetime.now(UTC).isoformat()


class VnfcProgress(BaseModel):
    hostname: str
    event: str | None = None
    script: str | None = None
    action: str | None = None
    status: str | None = None
    at: str = Field(default_factory=now)


class ErrorInfo(BaseModel):
    """One failure: which VNFR, during which NFVO action, and what the VNFM said."""

    vnfr: str
    action: str
    message: str
    hostname: str | None = None
    event: str | None = None
    script: str | None = None
    stderr: str | None = None
    at: str = Field(default_factory=now)

    @classmethod
    def from_vnfm(cls, vnfr_name: str, action: str, detail: str | None, cause: str | None,
                  record: VirtualNetworkFunctionRecord | None, step: FailedStep | None = None) -> ErrorInfo:
        """``step``: the answer's ``failedStep`` (gvnfm's VNFM); without it, the failed script its text
        names, else the VNFC the record has in state ``error``."""
        text = detail or cause or f"the VNFM answered ERROR to {action}"
        info = cls(vnfr=vnfr_name, action=action, message=text, stderr=cause)
        step = step or FailedStep.from_text(text)
        if step is not None and step.hostname is not None:
            info.hostname = step.hostname
            if step.is_script:
                info.script, info.event = step.script, step.event
        elif record is not None:
            failed = [i.hostname for i in record.vnfc_instances() if (i.state or "").lower() == "error"]
            info.hostname = failed[0] if failed else None
        return info


class HistoryEntry(BaseModel):
    action: str
    result: str                     # sent / ok / ERROR / timeout
    detail: str | None = None
    at: str = Field(default_factory=now)


class VnfrState(BaseModel):
    name: str
    type: str | None = None
    endpoint: str | None = None
    status: str = NULL
    action: str | None = None            # NFVO action in progress
    instantiated: bool = False           # INSTANTIATE answered (sources of a MODIFY only need this)
    configured: bool = False             # MODIFY answered
    vnfr: dict[str, Any] | None = None   # the VNFR as last received (wire form)
    hosts: list[str] = Field(default_factory=list)
    progress: dict[str, VnfcProgress] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)
    error: ErrorInfo | None = None

    def record(self) -> VirtualNetworkFunctionRecord | None:
        return VirtualNetworkFunctionRecord.model_validate(self.vnfr) if self.vnfr is not None else None

    def keep(self, vnfr: VirtualNetworkFunctionRecord) -> None:
        self.vnfr = vnfr.to_wire()


class DependencyView(BaseModel):
    source: str
    target: str
    parameters: list[str]


class NetworkServiceRecord(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: str | None = None
    vendor: str | None = None
    version: str | None = None
    status: str = NULL
    created_at: str = Field(default_factory=now)
    updated_at: str = Field(default_factory=now)
    vnfrs: dict[str, VnfrState] = Field(default_factory=dict)
    dependencies: list[DependencyView] = Field(default_factory=list)
    cyclic: list[str] = Field(default_factory=list)
    errors: list[ErrorInfo] = Field(default_factory=list)
    terminating: bool = False

    #: the onboarded VNFDs (ids assigned), by name (not part of the report)
    vnfds: dict[str, VirtualNetworkFunctionDescriptor] = Field(default_factory=dict, exclude=True, repr=False)
    #: the loaded bundle (packages for INSTANTIATE / SCALE_OUT / UPDATE)
    bundle: InstanceOf[ServiceBundle] | None = Field(default=None, exclude=True, repr=False)
    #: the virtual link records sent with INSTANTIATE
    vlrs: list[dict[str, Any]] = Field(default_factory=list, exclude=True, repr=False)

    def vnfr(self, name: str) -> VnfrState:
        try:
            return self.vnfrs[name]
        except KeyError:
            raise KeyError(f"network service {self.name!r} has no VNFR {name!r}") from None

    def touch(self) -> None:
        self.updated_at = now()

    def add_error(self, info: ErrorInfo) -> None:
        self.errors.append(info)
        state = self.vnfrs.get(info.vnfr)
        if state is not None:
            state.error = info
        self.touch()

    def refresh_status(self) -> str:
        """The NSR's status from its VNFRs (TERMINATED is set explicitly by teardown)."""
        if self.status == TERMINATED:
            return self.status
        states = [v.status for v in self.vnfrs.values()]
        if any(s == ERROR for s in states):
            self.status = ERROR
        elif states and all(s == ACTIVE for s in states):
            self.status = ACTIVE
        elif states and all(s in (INITIALIZED, INACTIVE, ACTIVE) for s in states):
            self.status = INITIALIZED
        else:
            self.status = NULL if all(s == NULL for s in states) else self.status
        self.touch()
        return self.status

    def hostnames(self) -> list[str]:
        return [h for v in self.vnfrs.values() for h in v.hosts]

    def report(self) -> dict[str, Any]:
        """JSON-able: the NSR, every VNFR (as last received), dependencies and errors."""
        return {
            "nsr": {"id": self.id, "name": self.name, "vendor": self.vendor, "version": self.version,
                    "status": self.status, "created_at": self.created_at, "updated_at": self.updated_at},
            "vnfrs": [
                {"name": v.name, "type": v.type, "endpoint": v.endpoint, "status": v.status,
                 "action": v.action, "hosts": list(v.hosts),
                 "vnfc": [self._vnfc_view(v, inst) for inst in self._instances(v)],
                 "history": [h.model_dump() for h in v.history],
                 "error": v.error.model_dump() if v.error else None,
                 "record": v.vnfr}
                for v in self.vnfrs.values()],
            "dependencies": [d.model_dump() for d in self.dependencies],
            "cyclic": list(self.cyclic),
            "errors": [e.model_dump() for e in self.errors],
        }

    @staticmethod
    def _instances(v: VnfrState) -> list[dict[str, Any]]:
        rec = v.vnfr or {}
        return [inst for vdu in rec.get("vdu") or [] for inst in vdu.get("vnfc_instance") or []]

    @staticmethod
    def _vnfc_view(v: VnfrState, inst: dict[str, Any]) -> dict[str, Any]:
        hostname = inst.get("hostname")
        progress = v.progress.get(hostname or "")
        return {"hostname": hostname, "id": inst.get("id"), "state": inst.get("state"),
                "ips": {ip.get("netName"): ip.get("ip") for ip in inst.get("ips") or []},
                "floatingIps": {ip.get("netName"): ip.get("ip") for ip in inst.get("floatingIps") or []},
                "progress": progress.model_dump() if progress else None}
