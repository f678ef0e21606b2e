"""The NFVO's answers to a VNFM's resource requests (protocol §4 steps 2-3, §5 SCALE_OUT):
GRANT_OPERATION (ids, capacity check, a VIM per VDU), ALLOCATE_RESOURCES (one host per VNFC through the
VIM, VNFC instances in the VNFR) and SCALING (one host for the component being scaled out, answered
SCALED with the VNFR under ``vnfr``).

Answers have the Java NFVO's shapes (``GrantoperationTask``, ``AllocateresourcesTask``, ``ScalingTask``):
what a VNFM built on the Java or the Python SDK reads, nothing of gvnfm's own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from gvnfm.catalogue.messages import (
    NfvMessage,
    OrVnfmGenericMessage,
    OrVnfmGrantLifecycleOperationMessage,
    VnfmOrAllocateResourcesMessage,
    VnfmOrGenericMessage,
    VnfmOrScalingMessage,
)
from gvnfm.catalogue.records import (
    LifecycleEventHistory,
    VirtualDeploymentUnit,
    VirtualNetworkFunctionRecord,
    VNFComponent,
)
from gvnfm.orchestrator import outgoing
from gvnfm.orchestrator.records import ERROR, TERMINATED, HistoryEntry, NetworkServiceRecord, VnfrState
from gvnfm.orchestrator.resources import Resources, add_instances, vnfc_count
from gvnfm.vim.base import Host, VimError

log = logging.getLogger(__name__)

#: the descriptions of GrantoperationTask and ScalingTask
GRANTED_TEXT = "All the resources that are contained in this VNFR were granted to be deployed in the chosen VIM(s)"
SCALING_TEXT = "The resources of this VNFR are scaling at the moment"

#: ``emit(nsr, vnfr_name, **fields of ProgressEvent)``
Emit = Callable[..., None]


class ResourceRequests:
    def __init__(self, resources: Resources, nsrs: dict[str, NetworkServiceRecord], emit: Emit) -> None:
        self.resources = resources
        self.nsrs = nsrs
        self.emit = emit
        #: (nsr id, vnfr name) -> (component id, mode) of the SCALE_OUT in progress
        self.pending_scale: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def locate(self, vnfr: VirtualNetworkFunctionRecord) -> tuple[NetworkServiceRecord, VnfrState] | str:
        nsr = self.nsrs.get(vnfr.parent_ns_id or "")
        if nsr is None:
            return (f"VNFR {vnfr.name} belongs to no network service of this orchestrator "
                    f"(parent_ns_id {vnfr.parent_ns_id!r})")
        state = nsr.vnfrs.get(vnfr.name)
        if state is None:
            return f"network service {nsr.name} has no VNF named {vnfr.name!r}"
        if nsr.status == TERMINATED or nsr.terminating:
            return f"network service {nsr.name} is being terminated: no resources for VNFR {vnfr.name}"
        return nsr, state

    def grant(self, msg: VnfmOrGenericMessage) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None:
            return outgoing.error(None, "GRANT_OPERATION carries no virtualNetworkFunctionRecord")
        found = self.locate(vnfr)
        if isinstance(found, str):
            log.error("event=grant_refused vnfr=%s reason=%r", vnfr.name, found)
            return outgoing.error(vnfr, found)
        nsr, state = found
        assign_ids(vnfr)
        vnfr.hbVersion = 1
        need = vnfc_count(vnfr.vdu)
        if not self.resources.reserve((nsr.id, vnfr.name), need):
            text = f"Not enough resources for deploying VNFR {vnfr.name}"
            log.error("event=grant_refused vnfr=%s need=%d available=%d", vnfr.name, need,
                      self.resources.available(exclude=(nsr.id, vnfr.name)))
            vnfr.status = ERROR
            state.history.append(HistoryEntry(action="GRANT_OPERATION", result="ERROR", detail=text))
            self.emit(nsr, vnfr.name, action="GRANT_OPERATION", state=ERROR, message=text)
            return outgoing.error(vnfr, text)
        add_history(vnfr, "GRANTED", GRANTED_TEXT)
        state.keep(vnfr)
        state.history.append(HistoryEntry(action="GRANT_OPERATION", result="ok", detail=f"{need} host(s)"))
        self.emit(nsr, vnfr.name, action="GRANT_OPERATION", state="granted")
        vim = outgoing.vim_instance(self.resources.vim.name)
        return OrVnfmGrantLifecycleOperationMessage(
            action="GRANT_OPERATION", grantAllowed=True,
            vduVim={vdu.id: vim for vdu in vnfr.vdu or [] if vdu.id}, virtualNetworkFunctionRecord=vnfr)

    async def allocate(self, msg: VnfmOrAllocateResourcesMessage) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None:
            return outgoing.error(None, "ALLOCATE_RESOURCES carries no virtualNetworkFunctionRecord")
        found = self.locate(vnfr)
        if isinstance(found, str):
            log.error("event=allocate_refused vnfr=%s reason=%r", vnfr.name, found)
            return outgoing.error(vnfr, found)
        nsr, state = found
        key = (nsr.id, vnfr.name)
        assign_ids(vnfr)
        # handed to the VIM as it came, as the Java NFVO does ("none" included: such a host starts no EMS)
        placements = self.resources.placements(vnfr, msg.userdata or "")
        if not self.resources.reserve(key, len(placements)):
            text = f"Not enough resources for deploying VNFR {vnfr.name}"
            vnfr.status = ERROR
            return outgoing.error(vnfr, text)
        state.action = "ALLOCATE_RESOURCES"
        self.emit(nsr, vnfr.name, action="ALLOCATE_RESOURCES", state="creating hosts",
                   message=", ".join(p.spec.hostname for p in placements))

        def created(host: Host) -> None:
            state.hosts.append(host.hostname)
            self.emit(nsr, vnfr.name, action="ALLOCATE_RESOURCES", hostname=host.hostname, state="host created")

        try:
            hosts = await self.resources.create(key, placements, on_created=created)
        except VimError as exc:
            gone = {p.spec.hostname for p in placements}
            state.hosts = [h for h in state.hosts if h not in gone]
            text = f"Could not allocate resources for VNFR {vnfr.name}: {exc}"
            log.error("event=allocate_failed vnfr=%s error=%r", vnfr.name, str(exc))
            state.history.append(HistoryEntry(action="ALLOCATE_RESOURCES", result="ERROR", detail=text))
            state.action = None
            vnfr.status = ERROR
            return outgoing.error(vnfr, text)
        if nsr.terminating or nsr.status == TERMINATED:
            # torn down while the hosts were being created: do not leave them behind
            await self.resources.remove([h.hostname for h in hosts])
            state.hosts = [h for h in state.hosts if h not in {x.hostname for x in hosts}]
            return outgoing.error(vnfr, f"network service {nsr.name} was terminated during the allocation")
        by_name = {h.hostname: h for h in hosts}
        add_instances(vnfr, [(p, self.resources.instance(p, by_name[p.spec.hostname])) for p in placements])
        state.keep(vnfr)
        state.action = None
        state.history.append(HistoryEntry(action="ALLOCATE_RESOURCES", result="ok",
                                          detail=", ".join(p.spec.hostname for p in placements)))
        log.info("event=allocated vnfr=%s hosts=%s", vnfr.name, ",".join(by_name))
        return OrVnfmGenericMessage(action="ALLOCATE_RESOURCES", vnfr=vnfr)

    async def scaling(self, msg: VnfmOrScalingMessage) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None:
            return outgoing.error(None, "SCALING carries no virtualNetworkFunctionRecord")
        found = self.locate(vnfr)
        if isinstance(found, str):
            return outgoing.error(vnfr, found)
        nsr, state = found
        component_id, mode = self.pending_scale.get((nsr.id, vnfr.name), (None, None))
        pick = pick_component(vnfr, component_id)
        if isinstance(pick, str):
            return outgoing.error(vnfr, f"cannot scale out VNFR {vnfr.name}: {pick}")
        vdu, component = pick
        key = (nsr.id, f"{vnfr.name}#scale")
        placements = self.resources.placements(vnfr, msg.userData or "", only=[(vdu, component)])
        if not self.resources.reserve(key, 1):
            return outgoing.error(vnfr, f"Not enough resources for scaling out VNFR {vnfr.name}")

        def created(host: Host) -> None:
            state.hosts.append(host.hostname)

        try:
            hosts = await self.resources.create(key, placements, on_created=created)
        except VimError as exc:
            state.hosts = [h for h in state.hosts if h != placements[0].spec.hostname]
            return outgoing.error(vnfr, f"Could not allocate resources for scaling out VNFR {vnfr.name}: {exc}")
        inst_state = "STANDBY" if (mode or "").lower() == "standby" else "ACTIVE"
        add_instances(vnfr, [(placements[0], self.resources.instance(placements[0], hosts[0], inst_state))])
        add_history(vnfr, "SCALE_OUT", SCALING_TEXT)
        state.keep(vnfr)
        self.emit(nsr, vnfr.name, action="SCALING", hostname=hosts[0].hostname, state="host created")
        # ScalingTask: ``new OrVnfmGenericMessage(vnfr, Action.SCALED)``, the VNFR under ``vnfr``
        return OrVnfmGenericMessage(action="SCALED", vnfr=vnfr)


def add_history(vnfr: VirtualNetworkFunctionRecord, event: str, description: str) -> None:
    """The entry the NFVO's task adds to the VNFR (``AbstractTask.setHistoryLifecycleEvent``), its
    ``executedAt`` in the NFVO's format (``yyyy.MM.dd-HH:mm:ss:SSS-z``)."""
    now = datetime.now(UTC)
    at = now.strftime("%Y.%m.%d-%H:%M:%S:") + f"{now.microsecond // 1000:03d}-UTC"
    vnfr.lifecycle_event_history = [*(vnfr.lifecycle_event_history or []),
                                    LifecycleEventHistory(event=event, description=description, executedAt=at)]


def assign_ids(vnfr: VirtualNetworkFunctionRecord) -> None:
    """Ids wherever absent, as the NFVO's save does: the VNFR, VDUs, VNFCs, connection points,
    lifecycle events, virtual links, configurations and their parameters."""
    vnfr.id = vnfr.id or outgoing.new_id()
    for vdu in vnfr.vdu or []:
        vdu.id = vdu.id or outgoing.new_id()
        for comp in vdu.vnfc or []:
            comp.id = comp.id or outgoing.new_id()
            for cp in comp.connection_point or []:
                cp.id = cp.id or outgoing.new_id()
    for le in vnfr.lifecycle_event or []:
        le.id = le.id or outgoing.new_id()
    for vl in vnfr.virtual_link or []:
        vl.id = vl.id or outgoing.new_id()
    for conf in (vnfr.configurations, vnfr.provides):
        if conf is not None:
            conf.id = conf.id or outgoing.new_id()
            for p in conf.configurationParameters or []:
                p.id = p.id or outgoing.new_id()


def pick_component(vnfr: VirtualNetworkFunctionRecord,
                    component_id: str | None) -> tuple[VirtualDeploymentUnit, VNFComponent] | str:
    """The VDU and component to add a VNFC instance of (a given component, else the first VDU with
    room); a text when impossible."""
    for vdu in vnfr.vdu or []:
        room = vdu.scale_in_out is None or len(vdu.vnfc_instance or []) < vdu.scale_in_out
        for comp in vdu.vnfc or []:
            if component_id is None or comp.id == component_id:
                if not room:
                    if component_id is not None:
                        return (f"VDU {vdu.name or vdu.id} already has {len(vdu.vnfc_instance or [])} VNFC instances "
                                f"(scale_in_out {vdu.scale_in_out})")
                    break
                return vdu, comp
    if component_id is not None:
        return f"no VNFC component with id {component_id!r}"
    return "every VDU has reached its scale_in_out"
