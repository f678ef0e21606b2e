"""The VNFR the VNFM builds from the VNFD of an INSTANTIATE (§4 step 1 of the protocol reference:
``create_vnf_record`` / ``VNFRUtils``)."""

from __future__ import annotations

from typing import Any

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.messages import OrVnfmInstantiateMessage
from gvnfm.catalogue.records import (
    Configuration,
    ConfigurationParameter,
    LifecycleEvent,
    VirtualDeploymentUnit,
    VirtualLink,
    VirtualNetworkFunctionRecord,
)


class RecordError(ValueError):
    """The VNFD cannot become a VNFR (no name, no VDU, ...)."""


def _strip_ids(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_ids(v) for k, v in data.items() if k not in ("id", "hbVersion")}
    if isinstance(data, list):
        return [_strip_ids(v) for v in data]
    return data


def build_vnfr(msg: OrVnfmInstantiateMessage) -> VirtualNetworkFunctionRecord:
    vnfd: VirtualNetworkFunctionDescriptor | None = msg.vnfd
    if vnfd is None:
        raise RecordError("INSTANTIATE carries no 'vnfd'")
    if not vnfd.name:
        raise RecordError("the VNFD has no name")
    if not vnfd.vdu:
        raise RecordError(f"VNFD {vnfd.name!r} has no VDU")
    extension = msg.extension or {}
    vim_instances = msg.vimInstances or {}
    # extId = the VIM's network id, as the record has it (its id is the NFVO's own record id)
    vlr_ids = {v.get("name"): v.get("extId") for v in msg.vlrs or [] if isinstance(v, dict)}

    vdus = []
    for vdu in vnfd.vdu:
        copy = VirtualDeploymentUnit.model_validate(_strip_ids(vdu.to_wire()))
        copy.parent_vdu = vdu.id
        vims = vim_instances.get(vdu.id or "") or vim_instances.get(vdu.name or "") or []
        names: list[Any] = [v.get("name") for v in vims if isinstance(v, dict) and v.get("name")]
        copy.vimInstanceName = names or list(vdu.vimInstanceName or [])
        copy.vnfc_instance = []
        vdus.append(copy)

    links = []
    for link in vnfd.virtual_link or []:
        copy_link = VirtualLink.model_validate(_strip_ids(link.to_wire()))
        if vlr_ids.get(link.name):
            copy_link.extId = vlr_ids[link.name]
        links.append(copy_link)

    conf = vnfd.configurations
    configurations = (Configuration.model_validate(_strip_ids(conf.to_wire())) if conf is not None
                      else Configuration(name=f"{vnfd.name}-configuration", configurationParameters=[]))
    if configurations.configurationParameters is None:
        configurations.configurationParameters = []
    # Keys without values, as the Java SDK's VNFRUtils (the python SDK leaves the list empty). Either
    # way no variable comes of them (null values are dropped, §6.1), and an NFVO reads a listed key as
    # "provided, null" (the key is dropped from a target's dependency). Values the NFVO puts in reach the
    # scripts: they run with the VNFR the NFVO returns from ALLOCATE_RESOURCES.
    provides = Configuration(name="provides", configurationParameters=[
        ConfigurationParameter(confKey=key) for key in vnfd.provides or []])
    # VNFD fields the reference copies as they are (descriptors §1.12)
    extra = {k: _strip_ids(v) for k, v in (vnfd.model_extra or {}).items()
             if k in ("auto_scale_policy", "connection_point", "cyclicDependency") and v is not None}
    # a Configuration named "requires" with one key per required parameter (VNFRUtils.setRequires), not
    # the VNFD's {source: {parameters}} map
    requires = Configuration(name="requires", configurationParameters=[
        ConfigurationParameter(confKey=param) for req in (vnfd.requires or {}).values()
        for param in req.parameters or []])

    return VirtualNetworkFunctionRecord(
        name=vnfd.name,
        type=vnfd.type,
        endpoint=vnfd.endpoint or vnfd.type,
        vendor=vnfd.vendor,
        version=vnfd.version,
        status="NULL",
        parent_ns_id=extension.get("nsr-id"),
        packageId=(msg.vnfPackage.id if msg.vnfPackage and msg.vnfPackage.id else vnfd.vnfPackageLocation),
        descriptor_reference=vnfd.id,
        deployment_flavour_key=(msg.vnfdf or {}).get("flavour_key"),
        lifecycle_event=[LifecycleEvent(event=le.event, lifecycle_events=list(le.lifecycle_events or []))
                         for le in vnfd.lifecycle_event or []],
        lifecycle_event_history=[],
        configurations=configurations,
        provides=provides,
        requires=requires,
        virtual_link=links,
        vdu=vdus,
        vnf_address=[],
        **extra,
    )
