"""The messages the orchestrator sends to a VNFM, built as the reference NFVO builds them (protocol
§3-§5), and the onboarding of descriptors (ids, defaults) that precedes them. Pure: no I/O."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from gvnfm.catalogue.descriptors import NetworkServiceDescriptor, VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.messages import (
    OrVnfmErrorMessage,
    OrVnfmExecuteScriptMessage,
    OrVnfmGenericMessage,
    OrVnfmHealVNFRequestMessage,
    OrVnfmInstantiateMessage,
    OrVnfmLogMessage,
    OrVnfmScalingMessage,
    OrVnfmStartStopMessage,
    OrVnfmUpdateMessage,
)
from gvnfm.catalogue.records import (
    VirtualNetworkFunctionRecord,
    VNFCInstance,
    VNFComponent,
    VNFRecordDependency,
)
from gvnfm.catalogue.scripts import Script, VNFPackage

#: The name the NFVO gives an ad-hoc script (execute-script, vnfm-ems §7.6).
RUNTIME_SCRIPT = "ob_runtime_script"


def new_id() -> str:
    return str(uuid.uuid4())


def local_timezone() -> str:
    tz = os.environ.get("TZ")
    if tz:
        return tz.lstrip(":")
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        pass
    try:
        link = os.readlink("/etc/localtime")
        return link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else "UTC"
    except OSError:
        return "UTC"


# -- onboarding ---------------------------------------------------------------------------------

def _ensure_ids(obj: dict[str, Any]) -> None:
    obj.setdefault("id", new_id())


def onboard_vnfd(vnfd: VirtualNetworkFunctionDescriptor, package_id: str | None) -> VirtualNetworkFunctionDescriptor:
    """A copy of the VNFD as the NFVO stores it: ids on every entity, VDU names defaulted to
    ``<vnfd name>-<i>``, ``vnfPackageLocation`` = the package id."""
    data = vnfd.to_wire()
    _ensure_ids(data)
    for i, vdu in enumerate(data.get("vdu") or []):
        _ensure_ids(vdu)
        vdu.setdefault("name", f"{data.get('name')}-{i}")
        for comp in vdu.get("vnfc") or []:
            _ensure_ids(comp)
            for cp in comp.get("connection_point") or []:
                _ensure_ids(cp)
    for key in ("lifecycle_event", "virtual_link", "deployment_flavour"):
        for item in data.get(key) or []:
            if isinstance(item, dict):
                _ensure_ids(item)
    conf = data.get("configurations")
    if isinstance(conf, dict):
        _ensure_ids(conf)
        for p in conf.get("configurationParameters") or []:
            _ensure_ids(p)
    if package_id:
        data["vnfPackageLocation"] = package_id
    return VirtualNetworkFunctionDescriptor.model_validate(data)


def virtual_link_records(nsd: NetworkServiceDescriptor, vim_name: str) -> list[dict[str, Any]]:
    """One record per virtual link of the service (NSD ``vld`` plus VNFD ``virtual_link`` names)."""
    names: list[str] = [v.name for v in nsd.vld or [] if v.name]
    for vnfd in nsd.vnfd:
        for vl in vnfd.virtual_link or []:
            if vl.name and vl.name not in names:
                names.append(vl.name)
    return [{"id": new_id(), "name": n, "extId": n, "vim_id": vim_name, "status": "ACTIVE"} for n in names]


def vim_instance(vim_name: str) -> dict[str, Any]:
    return {"id": vim_name, "name": vim_name, "type": "local", "authUrl": "local://" + vim_name}


# -- NFVO -> VNFM -------------------------------------------------------------------------------

def instantiate(vnfd: VirtualNetworkFunctionDescriptor, package: VNFPackage | None, *, nsr_id: str, vim_name: str,
                vlrs: list[dict[str, Any]], broker_ip: str, broker_port: int, timezone: str,
                monitoring_ip: str = "", vnfr: VirtualNetworkFunctionRecord | None = None) -> OrVnfmInstantiateMessage:
    """``vnfr``: the NFVO's restart path (``VnfmManager.restartVnfr``: "so the allocate resources will be
    skipped"); None on a deployment."""
    flavour = vnfd.deployment_flavour[0] if vnfd.deployment_flavour else None
    vnfdf: dict[str, Any] = {"flavour_key": (flavour.flavour_key if flavour and flavour.flavour_key else "m1.small")}
    if flavour is not None and flavour.id:
        vnfdf["id"] = flavour.id
    vims = {vdu.id: [vim_instance(vim_name)] for vdu in vnfd.vdu or [] if vdu.id}
    return OrVnfmInstantiateMessage(
        action="INSTANTIATE", vnfd=vnfd, vnfdf=vnfdf, vnfInstanceName=vnfd.name,
        vlrs=[dict(v) for v in vlrs],                 # every virtual link record of the service, as the NFVO
        extension={"nsr-id": nsr_id, "brokerIp": broker_ip, "brokerPort": str(broker_port),
                   "monitoringIp": monitoring_ip, "timezone": timezone},
        vimInstances=vims, vnfPackage=package, keys=[], **({"vnfr": vnfr} if vnfr is not None else {}))


def modify(vnfr: VirtualNetworkFunctionRecord, dependency: VNFRecordDependency) -> OrVnfmGenericMessage:
    return OrVnfmGenericMessage(action="MODIFY", vnfr=vnfr, vnfrd=dependency)


def start_stop(action: str, vnfr: VirtualNetworkFunctionRecord, instance: VNFCInstance | None = None
               ) -> OrVnfmStartStopMessage:
    if instance is None:
        return OrVnfmStartStopMessage(action=action, virtualNetworkFunctionRecord=vnfr)
    return OrVnfmStartStopMessage(action=action, virtualNetworkFunctionRecord=vnfr, vnfcInstance=instance)


def release(vnfr: VirtualNetworkFunctionRecord) -> OrVnfmGenericMessage:
    return OrVnfmGenericMessage(action="RELEASE_RESOURCES", vnfr=vnfr)


def resume(vnfr: VirtualNetworkFunctionRecord, dependency: VNFRecordDependency | None) -> OrVnfmGenericMessage:
    if dependency is None:
        return OrVnfmGenericMessage(action="RESUME", vnfr=vnfr)
    return OrVnfmGenericMessage(action="RESUME", vnfr=vnfr, vnfrd=dependency)


def scale_out(vnfr: VirtualNetworkFunctionRecord, component: VNFComponent, package: VNFPackage | None,
              dependency: VNFRecordDependency | None, mode: str | None, *, nsr_id: str, vim_name: str,
              broker_ip: str, broker_port: int, timezone: str) -> OrVnfmScalingMessage:
    fields: dict[str, Any] = {
        "action": "SCALE_OUT", "component": component, "virtualNetworkFunctionRecord": vnfr,
        "vimInstance": vim_instance(vim_name),
        "extension": {"nsr-id": nsr_id, "brokerIp": broker_ip, "brokerPort": str(broker_port),
                      "monitoringIp": "", "timezone": timezone}}
    if package is not None:
        fields["vnfPackage"] = package
    if dependency is not None:
        fields["dependency"] = dependency
    if mode:
        fields["mode"] = mode
    return OrVnfmScalingMessage(**fields)


def new_component(template: VNFComponent) -> VNFComponent:
    """The VNFComponent the NFVO adds to a VDU to scale out (``addVNFCInstance``): the connection points
    of ``template``, new ids."""
    return VNFComponent(id=new_id(), connection_point=[
        cp.model_copy(update={"id": new_id()}) for cp in template.connection_point or []])


def scale_in(target: VirtualNetworkFunctionRecord, removed: VNFCInstance) -> OrVnfmScalingMessage:
    return OrVnfmScalingMessage(action="SCALE_IN", virtualNetworkFunctionRecord=target, vnfcInstance=removed)


def heal(vnfr: VirtualNetworkFunctionRecord, instance: VNFCInstance, cause: str) -> OrVnfmHealVNFRequestMessage:
    return OrVnfmHealVNFRequestMessage(action="HEAL", virtualNetworkFunctionRecord=vnfr, vnfcInstance=instance,
                                       cause=cause)


def update(vnfr: VirtualNetworkFunctionRecord, script: Script | None) -> OrVnfmUpdateMessage:
    if script is None:
        return OrVnfmUpdateMessage(action="UPDATE", vnfr=vnfr)
    return OrVnfmUpdateMessage(action="UPDATE", vnfr=vnfr, script=script)


def execute(vnfr: VirtualNetworkFunctionRecord, text: str | bytes) -> OrVnfmExecuteScriptMessage:
    payload = text.encode() if isinstance(text, str) else text
    return OrVnfmExecuteScriptMessage(action="EXECUTE", vnfr=vnfr,
                                      script=Script(id=new_id(), name=RUNTIME_SCRIPT, payload=payload))


def log_request(vnfr_name: str, hostname: str) -> OrVnfmLogMessage:
    return OrVnfmLogMessage(action="LOG_REQUEST", vnfrName=vnfr_name, hostname=hostname)


def error(vnfr: VirtualNetworkFunctionRecord | None, text: str) -> OrVnfmErrorMessage:
    if vnfr is None:
        return OrVnfmErrorMessage(action="ERROR", message=text)
    return OrVnfmErrorMessage(action="ERROR", vnfr=vnfr, message=text)
