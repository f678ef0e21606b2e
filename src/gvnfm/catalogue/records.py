"""Records the NFVO and the VNFM exchange: the VNFR with its VDUs and VNFC instances, and the
VNFRecordDependency. Field names are exactly the NFVO's (Gson = Java field names)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gvnfm.catalogue.base import WireModel

#: Record status values (``mano/record/Status.java``).
STATUSES = ("ERROR", "NULL", "INITIALIZED", "INACTIVE", "SCALING", "ACTIVE", "TERMINATED", "RESUMING")

#: Lifecycle events (``mano/common/Event.java``).
EVENTS = (
    "GRANTED", "ALLOCATE", "SCALE", "RELEASE", "ERROR", "INSTANTIATE", "TERMINATE", "CONFIGURE",
    "START", "STOP", "HEAL", "SCALE_OUT", "SCALE_IN", "SCALE_UP", "SCALE_DOWN", "UPDATE",
    "UPDATE_ROLLBACK", "UPGRADE", "UPGRADE_ROLLBACK", "RESET",
)


class ConfigurationParameter(WireModel):
    id: str | None = None
    confKey: str
    value: str | None = None
    description: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        # Java holds values as strings; descriptors written by hand carry numbers and booleans.
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)


class Configuration(WireModel):
    id: str | None = None
    name: str | None = None
    configurationParameters: list[ConfigurationParameter] | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {p.confKey: p.value for p in self.configurationParameters or []}


class LifecycleEvent(WireModel):
    id: str | None = None
    event: str
    lifecycle_events: list[str] | None = None


class Ip(WireModel):
    id: str | None = None
    netName: str
    ip: str | None = None


class ConnectionPoint(WireModel):
    id: str | None = None
    virtual_link_reference: str | None = None
    floatingIp: str | None = None
    interfaceId: int | None = None


class VNFComponent(WireModel):
    id: str | None = None
    connection_point: list[ConnectionPoint] = Field(default_factory=list)


class VNFCInstance(WireModel):
    id: str | None = None
    hostname: str | None = None
    state: str | None = None
    vim_id: str | None = None
    vc_id: str | None = None
    vnfComponent: VNFComponent | None = None
    ips: list[Ip] | None = None
    floatingIps: list[Ip] | None = None
    connection_point: list[ConnectionPoint] | None = None


class VirtualDeploymentUnit(WireModel):
    id: str | None = None
    name: str | None = None
    parent_vdu: str | None = None
    scale_in_out: int | None = None
    vm_image: list[str] | None = None
    vimInstanceName: list[str] | None = None
    vnfc: list[VNFComponent] | None = None
    vnfc_instance: list[VNFCInstance] | None = None


class VirtualLink(WireModel):
    id: str | None = None
    name: str | None = None
    extId: str | None = None        # the VIM's network id (Java ``AbstractVirtualLink.extId``)


class LifecycleEventHistory(WireModel):
    id: str | None = None
    event: str | None = None
    description: str | None = None
    executedAt: str | None = None


class VirtualNetworkFunctionRecord(WireModel):
    id: str | None = None
    hbVersion: int | None = None
    name: str
    type: str | None = None
    endpoint: str | None = None
    status: str | None = None
    parent_ns_id: str | None = None
    packageId: str | None = None
    version: str | None = None
    vendor: str | None = None
    descriptor_reference: str | None = None
    deployment_flavour_key: str | None = None
    lifecycle_event: list[LifecycleEvent] | None = None
    lifecycle_event_history: list[LifecycleEventHistory] | None = None
    configurations: Configuration | None = None
    provides: Configuration | None = None
    requires: Any = None
    virtual_link: list[VirtualLink] | None = None
    vdu: list[VirtualDeploymentUnit] | None = None
    vnf_address: list[str] | None = None

    # -- read helpers (no I/O) ---------------------------------------------------------------
    def vnfc_instances(self) -> list[VNFCInstance]:
        return [i for vdu in self.vdu or [] for i in vdu.vnfc_instance or []]

    def find_vnfc_instance(self, *, id: str | None = None, hostname: str | None = None) -> VNFCInstance | None:
        for inst in self.vnfc_instances():
            if (id is not None and inst.id == id) or (hostname is not None and inst.hostname == hostname):
                return inst
        return None

    def scripts_of(self, event: str) -> list[str] | None:
        """The script list of a VNFR-level lifecycle event, or None when the event is absent."""
        for le in self.lifecycle_event or []:
            if le.event == event:
                return le.lifecycle_events
        return None


class DependencyParameters(WireModel):
    parameters: dict[str, str | None] = Field(default_factory=dict)


class VNFCDependencyParameters(WireModel):
    parameters: dict[str, DependencyParameters] = Field(default_factory=dict)


class VNFRecordDependency(WireModel):
    id: str | None = None
    hbVersion: int | None = None
    target: str | None = None
    parameters: dict[str, DependencyParameters] = Field(default_factory=dict)
    vnfcParameters: dict[str, VNFCDependencyParameters] = Field(default_factory=dict)
    idType: dict[str, str] = Field(default_factory=dict)
