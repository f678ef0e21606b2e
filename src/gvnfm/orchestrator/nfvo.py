"""The local orchestrator's NFVO service: the NFVO side of the Open Baton wire protocol over a
``Transport`` (protocol reference §1-§5).

It consumes
- ``nfvo.manager.handling``: VNFM registration (RPC) and unregistration;
- ``vnfm.nfvo.actions.reply``: GRANT_OPERATION, ALLOCATE_RESOURCES and SCALING requests (RPC), answered
  against the VIM's capacity; hosts are created through the VIM;
- ``vnfm.nfvo.actions``: results a VNFM sends without a request (e.g. ERROR notices);
and sends INSTANTIATE, MODIFY, START, STOP, RELEASE_RESOURCES and the day-2 actions to a VNFM's
endpoint queue as RPCs, keeping the records (``records.NetworkServiceRecord``) up to date.

Requests with a correlation id are answered once: a VNFM that repeats a request (after a crash) gets
the same answer again and no second set of hosts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

from gvnfm.catalogue.messages import (
    MessageError,
    NfvMessage,
    VnfmOrAllocateResourcesMessage,
    VnfmOrErrorMessage,
    VnfmOrGenericMessage,
    VnfmOrLogMessage,
    VnfmOrScaledMessage,
    VnfmOrScalingMessage,
    parse_vnfm_message,
    vnfr_of,
)
from gvnfm.catalogue.records import (
    VirtualNetworkFunctionRecord,
    VNFCInstance,
    VNFComponent,
    VNFRecordDependency,
)
from gvnfm.catalogue.scripts import Script
from gvnfm.orchestrator import outgoing
from gvnfm.orchestrator.dependencies import (
    Edge,
    build_record_dependency,
    build_scaled_dependency,
    merge_dependencies,
    on_cycles,
    sources_of,
    targets_of,
)
from gvnfm.orchestrator.errors import NotEnoughResources, OrchestratorError, VnfmError
from gvnfm.orchestrator.events import EventHub, ProgressEvent
from gvnfm.orchestrator.grants import ResourceRequests, pick_component
from gvnfm.orchestrator.loader import ServiceBundle
from gvnfm.orchestrator.records import (
    ACTIVE,
    ERROR,
    INACTIVE,
    INITIALIZED,
    SCALING,
    DependencyView,
    ErrorInfo,
    HistoryEntry,
    NetworkServiceRecord,
    VnfcProgress,
    VnfrState,
)
from gvnfm.orchestrator.registry import VnfmRegistry
from gvnfm.orchestrator.resources import Resources, remove_instance, vnfc_count
from gvnfm.transport import Delivery, RpcTimeout, Subscription, Transport, TransportError
from gvnfm.vim.base import Vim

log = logging.getLogger(__name__)

REGISTRATION_QUEUE = "nfvo.manager.handling"
SYNC_QUEUE = "vnfm.nfvo.actions.reply"
ASYNC_QUEUE = "vnfm.nfvo.actions"
#: Largest message accepted from a VNFM.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Requests answered through ``vnfm.nfvo.actions.reply``.
REQUESTS = ("GRANT_OPERATION", "ALLOCATE_RESOURCES", "SCALING")


def _exception_text(msg: VnfmOrErrorMessage) -> tuple[str | None, str | None]:
    exc = msg.exception
    if exc is None:
        return None, None
    cause = exc.cause.detailMessage if exc.cause is not None else None
    return exc.detailMessage, cause


class LocalNfvo:
    def __init__(self, transport: Transport, vim: Vim, *, broker_ip: str = "127.0.0.1", broker_port: int = 5672,
                 endpoint_credentials: tuple[str, str] | None = None, reply_timeout: float = 900.0,
                 timezone: str | None = None, queue_prefix: str = "", answer_cache: int = 1024) -> None:
        """``queue_prefix`` prefixes the three NFVO queue names (only for tests sharing one broker)."""
        self.transport = transport
        self.vim = vim
        self.broker_ip = broker_ip
        self.broker_port = broker_port
        self.endpoint_credentials = endpoint_credentials
        self.reply_timeout = reply_timeout
        self.timezone = timezone or outgoing.local_timezone()
        self.registration_queue = queue_prefix + REGISTRATION_QUEUE
        self.sync_queue = queue_prefix + SYNC_QUEUE
        self.async_queue = queue_prefix + ASYNC_QUEUE
        self.resources = Resources(vim)
        self.events = EventHub()
        self.registry = VnfmRegistry(endpoint_credentials)
        self.nsrs: dict[str, NetworkServiceRecord] = {}
        self.requests = ResourceRequests(self.resources, self.nsrs, self.emit)
        self._subs: list[Subscription] = []
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._answer_cache = answer_cache
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    # == service ===================================================================================
    async def start(self) -> None:
        for queue in (self.registration_queue, self.sync_queue, self.async_queue):
            await self.transport.declare_queue(queue, durable=True, auto_delete=True)
        self._subs.append(await self.transport.consume(self.registration_queue, self._on_registration, prefetch=16))
        self._subs.append(await self.transport.consume(self.sync_queue, self._on_request, prefetch=32))
        self._subs.append(await self.transport.consume(self.async_queue, self._on_notice, prefetch=32))
        log.info("event=nfvo_started vim=%s queues=%s,%s,%s", self.vim.name, self.registration_queue,
                 self.sync_queue, self.async_queue)

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.cancel()
            except Exception as exc:
                log.warning("event=nfvo_unsubscribe_failed error=%r", str(exc))
        self._subs.clear()

    def add_listener(self, listener: Any) -> None:
        self.events.add(listener)

    def remove_listener(self, listener: Any) -> None:
        self.events.remove(listener)

    def emit(self, nsr: NetworkServiceRecord, vnfr: str | None = None, **kw: Any) -> None:
        self.events.emit(ProgressEvent(nsr_id=nsr.id, vnfr=vnfr, **kw))

    # == registration =============================================================================
    @property
    def vnfms(self) -> dict[str, dict[str, Any]]:
        """Registered VNFMs: type -> {"endpoint", "description", "credentials"}."""
        return self.registry.vnfms

    def endpoint_for(self, vnfm_type: str | None) -> str:
        return self.registry.endpoint_for(vnfm_type)

    async def wait_for_vnfm(self, vnfm_type: str, timeout: float) -> bool:
        return await self.registry.wait_for(vnfm_type, timeout)

    async def _on_registration(self, delivery: Delivery) -> None:
        try:
            data = json.loads(delivery.message.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("event=bad_registration error=%r body=%r", str(exc), delivery.message.body[:200])
            data = None
        answer = self.registry.handle(data) if data is not None else None
        if answer is not None:
            try:
                await self.transport.reply(delivery.message, json.dumps(answer).encode())
            except TransportError as exc:
                log.error("event=registration_reply_failed error=%r", str(exc))
        await delivery.ack()

    # == requests from VNFMs =======================================================================
    async def _on_request(self, delivery: Delivery) -> None:
        msg = delivery.message
        cid = msg.correlation_id or ""
        if not msg.reply_to:
            # an answer sent without reply_to (e.g. INSTANTIATE of a VNFM that lost our reply queue)
            await self._notice(msg.body)
            await delivery.ack()
            return
        if cid and cid in self._answers:
            log.info("event=request_repeated correlation_id=%s", cid)
            await self._send_answer(delivery, self._answers[cid])
            return
        if cid and cid in self._inflight:
            answer = await asyncio.shield(self._inflight[cid])
            await self._send_answer(delivery, answer)
            return
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if cid:
            self._inflight[cid] = fut
        try:
            reply = await self._answer(msg.body)
        except asyncio.CancelledError:
            self._inflight.pop(cid, None)
            fut.cancel()
            raise
        except Exception as exc:  # a bug must still answer the VNFM
            log.exception("event=request_crashed correlation_id=%s", cid)
            reply = outgoing.error(None, f"gvnfm orchestrator failed on this request: {exc!r}")
        body = reply.to_json().encode()
        if cid:
            self._answers[cid] = body
            while len(self._answers) > self._answer_cache:
                self._answers.popitem(last=False)
            self._inflight.pop(cid, None)
        fut.set_result(body)
        await self._send_answer(delivery, body)

    async def _send_answer(self, delivery: Delivery, body: bytes) -> None:
        try:
            await self.transport.reply(delivery.message, body)
        except TransportError as exc:
            log.error("event=answer_failed reply_to=%s error=%r", delivery.message.reply_to, str(exc))
        await delivery.ack()

    async def _answer(self, body: bytes) -> NfvMessage:
        if len(body) > MAX_MESSAGE_BYTES:
            return outgoing.error(None, f"message of {len(body)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
        try:
            msg = parse_vnfm_message(body)
        except MessageError as exc:
            log.error("event=request_refused error=%r body=%r", str(exc), body[:300])
            return outgoing.error(None, f"gvnfm orchestrator cannot handle this request: {exc}")
        if msg.action == "GRANT_OPERATION" and isinstance(msg, VnfmOrGenericMessage):
            return self.requests.grant(msg)
        if msg.action == "ALLOCATE_RESOURCES" and isinstance(msg, VnfmOrAllocateResourcesMessage):
            return await self.requests.allocate(msg)
        if msg.action == "SCALING" and isinstance(msg, VnfmOrScalingMessage):
            return await self.requests.scaling(msg)
        log.error("event=request_refused action=%s reason=not_a_request", msg.action)
        return outgoing.error(vnfr_of(msg), f"{msg.action} is not a request the NFVO answers on "
                                             f"{SYNC_QUEUE} (expected one of {', '.join(REQUESTS)})")

    # == notices from VNFMs ========================================================================
    async def _on_notice(self, delivery: Delivery) -> None:
        try:
            await self._notice(delivery.message.body)
        except Exception:
            log.exception("event=notice_crashed")
        await delivery.ack()

    async def _notice(self, body: bytes) -> None:
        try:
            msg = parse_vnfm_message(body)
        except MessageError as exc:
            log.error("event=notice_refused error=%r body=%r", str(exc), body[:300])
            return
        vnfr = vnfr_of(msg)
        nsr_id = getattr(msg, "nsrId", None) or (vnfr.parent_ns_id if vnfr else None)
        nsr = self.nsrs.get(nsr_id or "")
        state = nsr.vnfrs.get(vnfr.name) if nsr is not None and vnfr is not None else None
        if nsr is None or state is None or vnfr is None:
            log.warning("event=notice_unmatched action=%s nsr=%s vnfr=%s", msg.action, nsr_id,
                        vnfr.name if vnfr else None)
            return
        state.keep(vnfr)
        if isinstance(msg, VnfmOrErrorMessage):
            detail, cause = _exception_text(msg)
            info = ErrorInfo.from_vnfm(vnfr.name, state.action or "ERROR", detail, cause, vnfr)
            state.status = ERROR
            nsr.add_error(info)
            nsr.refresh_status()
            log.error("event=vnfm_error_notice vnfr=%s error=%r", vnfr.name, info.message)
            self.emit(nsr, vnfr.name, action="ERROR", state=ERROR, hostname=info.hostname, message=info.message)
        else:
            log.info("event=vnfm_notice action=%s vnfr=%s", msg.action, vnfr.name)
            self.emit(nsr, vnfr.name, action=msg.action, state=state.status)

    # == progress from the VNFM's side (hook) ======================================================
    def on_vnfm_progress(self, update: dict[str, Any]) -> None:
        """Feed per-script progress (e.g. the gvnfm VNFM's progress hook: ``{"vnfr", "hostname",
        "event", "script", "action", "status"}``) into the records and the event stream."""
        hostname = str(update.get("hostname") or "")
        for nsr in self.nsrs.values():
            for state in nsr.vnfrs.values():
                if hostname and hostname in state.hosts:
                    state.progress[hostname] = VnfcProgress(
                        hostname=hostname, event=update.get("event"), script=update.get("script"),
                        action=update.get("action"), status=update.get("status"))
                    self.emit(nsr, state.name, hostname=hostname, event=update.get("event"),
                               script=update.get("script"), action=update.get("action"), state=update.get("status"))
                    return

    # == onboarding ================================================================================
    def onboard(self, bundle: ServiceBundle) -> NetworkServiceRecord:
        """Create the NSR of a (validated) bundle: VNFDs with ids, VNFR entries in state NULL, merged
        dependencies."""
        nsd = bundle.nsd
        nsr = NetworkServiceRecord(name=nsd.name, vendor=nsd.vendor, version=nsd.version)
        for vnfd in nsd.vnfd:
            name = vnfd.name or ""
            package = bundle.packages.get(name)
            nsr._vnfds[name] = outgoing.onboard_vnfd(vnfd, package.id if package else None)
            nsr.vnfrs[name] = VnfrState(name=name, type=vnfd.type, endpoint=vnfd.endpoint)
        edges = merge_dependencies(nsd.vnfd, nsd.vnf_dependency or [])
        nsr.dependencies = [DependencyView(source=e.source, target=e.target, parameters=list(e.parameters))
                            for e in edges]
        nsr.cyclic = sorted(on_cycles(edges))
        nsr._bundle = bundle
        nsr._vlrs = outgoing.virtual_link_records(nsd, self.vim.name)
        self.nsrs[nsr.id] = nsr
        return nsr

    def reserve(self, nsr: NetworkServiceRecord) -> None:
        """Reserve hosts for every VNF of the service, or raise NotEnoughResources (nothing reserved)."""
        needs = {(nsr.id, name): vnfc_count(vnfd.vdu) for name, vnfd in nsr._vnfds.items()}
        short = self.resources.reserve_all(needs)
        if short is not None:
            total = sum(needs.values())
            raise NotEnoughResources(
                f"Not enough resources for deploying VNFR {short[1]} (network service {nsr.name} needs {total} "
                f"host(s), VIM {self.vim.name!r} has {self.resources.available()} free)")

    @staticmethod
    def edges(nsr: NetworkServiceRecord) -> list[Edge]:
        return [Edge(d.source, d.target, tuple(d.parameters)) for d in nsr.dependencies]

    def dependency_for(self, nsr: NetworkServiceRecord, target: str) -> VNFRecordDependency | None:
        """The full VNFRecordDependency of ``target`` from its sources' current VNFRs (None: not a target)."""
        edges = sources_of(self.edges(nsr), target)
        if not edges:
            return None
        sources = []
        for edge in edges:
            record = nsr.vnfr(edge.source).record()
            if record is None:
                raise OrchestratorError(f"VNFR {target}: its source {edge.source} has no record yet")
            sources.append((list(edge.parameters), record))
        return build_record_dependency(target, sources, dependency_id=outgoing.new_id())

    # == sending to VNFMs ==========================================================================
    def _current(self, nsr: NetworkServiceRecord, name: str) -> VirtualNetworkFunctionRecord:
        state = nsr.vnfr(name)
        record = state.record()
        if record is None:
            raise OrchestratorError(f"VNFR {name} has no record yet (it was never instantiated)")
        record.status = state.status
        return record

    async def _call(self, nsr: NetworkServiceRecord, name: str, message: NfvMessage, expect: tuple[str, ...],
                    *, timeout: float | None = None) -> NfvMessage:
        """RPC to the VNFM of ``name``; ERROR answers, timeouts and unusable answers mark the VNFR ERROR
        and raise VnfmError."""
        state = nsr.vnfr(name)
        routing_key = self.endpoint_for(state.endpoint)
        action = message.action
        state.action = action
        state.history.append(HistoryEntry(action=action, result="sent"))
        self.emit(nsr, name, action=action, state=state.status, message="sent")
        limit = self.reply_timeout if timeout is None else timeout
        log.info("event=send action=%s vnfr=%s endpoint=%s", action, name, routing_key)

        def fail(text: str, info: ErrorInfo | None = None) -> VnfmError:
            state.status = ERROR
            state.action = None
            error = info or ErrorInfo(vnfr=name, action=action, message=text)
            nsr.add_error(error)
            nsr.refresh_status()
            state.history.append(HistoryEntry(action=action, result="ERROR", detail=error.message))
            self.emit(nsr, name, action=action, state=ERROR, hostname=error.hostname, message=error.message)
            log.error("event=action_failed action=%s vnfr=%s error=%r", action, name, error.message)
            return VnfmError(f"VNFR {name}: {action} failed: {error.message}", vnfr=name, action=action)

        try:
            raw = await self.transport.rpc(routing_key, message.to_json().encode(), timeout=limit)
        except RpcTimeout as exc:
            raise fail(f"the VNFM (endpoint {routing_key!r}) did not answer within {limit:g} s") from exc
        except TransportError as exc:
            raise fail(f"sending to the VNFM (endpoint {routing_key!r}) failed: {exc}") from exc
        try:
            reply = parse_vnfm_message(raw)
        except MessageError as exc:
            raise fail(f"the VNFM's answer is unusable: {exc}") from exc
        record = vnfr_of(reply)
        if record is not None and record.name == name:
            state.keep(record)
        if isinstance(reply, VnfmOrErrorMessage):
            detail, cause = _exception_text(reply)
            raise fail("", ErrorInfo.from_vnfm(name, action, detail, cause, record))
        if reply.action not in expect:
            raise fail(f"the VNFM answered {reply.action} (expected {' or '.join(expect)})")
        state.action = None
        state.history.append(HistoryEntry(action=action, result="ok", detail=reply.action))
        self.emit(nsr, name, action=action, state=state.status, message="answered")
        return reply

    def _set_status(self, nsr: NetworkServiceRecord, name: str, status: str, action: str) -> None:
        state = nsr.vnfr(name)
        state.status = status
        if state.vnfr is not None:
            state.vnfr["status"] = status
        nsr.refresh_status()
        self.emit(nsr, name, action=action, state=status)

    # -- lifecycle -----------------------------------------------------------------------------------
    async def instantiate(self, nsr: NetworkServiceRecord, name: str) -> VirtualNetworkFunctionRecord:
        vnfd = nsr._vnfds[name]
        bundle: ServiceBundle = nsr._bundle
        content = bundle.packages.get(name) if bundle is not None else None
        message = outgoing.instantiate(
            vnfd, content.to_package() if content else None, nsr_id=nsr.id, vim_name=self.vim.name,
            vlrs=nsr._vlrs, broker_ip=self.broker_ip, broker_port=self.broker_port, timezone=self.timezone)
        await self._call(nsr, name, message, ("INSTANTIATE",))
        state = nsr.vnfr(name)
        state.instantiated = True
        self._set_status(nsr, name, INITIALIZED, "INSTANTIATE")
        self.resources.release((nsr.id, name))
        return self._current(nsr, name)

    async def modify(self, nsr: NetworkServiceRecord, name: str,
                     dependency: VNFRecordDependency | None = None) -> VirtualNetworkFunctionRecord:
        dep = dependency or self.dependency_for(nsr, name)
        if dep is None:
            raise OrchestratorError(f"VNFR {name} is not a dependency target: nothing to MODIFY")
        await self._call(nsr, name, outgoing.modify(self._current(nsr, name), dep), ("MODIFY",))
        nsr.vnfr(name).configured = True
        if nsr.vnfr(name).status != ACTIVE:
            self._set_status(nsr, name, INACTIVE, "MODIFY")
        return self._current(nsr, name)

    async def start_vnf(self, nsr: NetworkServiceRecord, name: str,
                        hostname: str | None = None) -> VirtualNetworkFunctionRecord:
        return await self._start_stop("START", nsr, name, hostname)

    async def stop_vnf(self, nsr: NetworkServiceRecord, name: str,
                       hostname: str | None = None) -> VirtualNetworkFunctionRecord:
        return await self._start_stop("STOP", nsr, name, hostname)

    async def _start_stop(self, action: str, nsr: NetworkServiceRecord, name: str,
                          hostname: str | None) -> VirtualNetworkFunctionRecord:
        record = self._current(nsr, name)
        instance = None
        if hostname is not None:
            instance = record.find_vnfc_instance(hostname=hostname)
            if instance is None:
                raise OrchestratorError(f"VNFR {name} has no VNFC instance {hostname!r}")
        await self._call(nsr, name, outgoing.start_stop(action, record, instance), (action,))
        if instance is None:
            self._set_status(nsr, name, ACTIVE if action == "START" else INACTIVE, action)
        else:
            self.emit(nsr, name, action=action, hostname=hostname, state="done")
        return self._current(nsr, name)

    async def release(self, nsr: NetworkServiceRecord, name: str, *, timeout: float | None = None) -> None:
        await self._call(nsr, name, outgoing.release(self._current(nsr, name)), ("RELEASE_RESOURCES",),
                         timeout=timeout)

    async def remove_hosts(self, nsr: NetworkServiceRecord, name: str) -> list[str]:
        """Remove the hosts of a VNFR; returns the errors (also recorded)."""
        state = nsr.vnfr(name)
        errors = await self.resources.remove(list(state.hosts))
        failed = {e.split(":", 1)[0] for e in errors}
        state.hosts = [h for h in state.hosts if h in failed]
        for text in errors:
            nsr.add_error(ErrorInfo(vnfr=name, action="REMOVE_HOST", message=text))
        self.emit(nsr, name, action="REMOVE_HOSTS", state="done" if not errors else ERROR)
        return errors

    # -- day 2 ---------------------------------------------------------------------------------------
    async def scale_out(self, nsr: NetworkServiceRecord, vnfr_name: str, vnfc_component_id: str | None = None,
                        mode: str | None = None) -> VNFCInstance:
        record = self._current(nsr, vnfr_name)
        pick = pick_component(record, vnfc_component_id)
        if isinstance(pick, str):
            raise OrchestratorError(f"cannot scale out VNFR {vnfr_name}: {pick}")
        _vdu, component = pick
        if self.resources.available() < 1:
            raise NotEnoughResources(f"Not enough resources for scaling out VNFR {vnfr_name}")
        bundle: ServiceBundle = nsr._bundle
        content = bundle.packages.get(vnfr_name) if bundle is not None else None
        before = {i.id for i in record.vnfc_instances()}
        key = (nsr.id, vnfr_name)
        self.requests.pending_scale[key] = (component.id, mode)
        previous = nsr.vnfr(vnfr_name).status
        self._set_status(nsr, vnfr_name, SCALING, "SCALE_OUT")
        message = outgoing.scale_out(
            record, VNFComponent.model_validate(component.to_wire()), content.to_package() if content else None,
            self.dependency_for(nsr, vnfr_name), mode, nsr_id=nsr.id, vim_name=self.vim.name,
            broker_ip=self.broker_ip, broker_port=self.broker_port, timezone=self.timezone)
        try:
            reply = await self._call(nsr, vnfr_name, message, ("SCALED",))
        finally:
            self.requests.pending_scale.pop(key, None)
        assert isinstance(reply, VnfmOrScaledMessage)
        self._set_status(nsr, vnfr_name, previous, "SCALED")
        scaled = self._current(nsr, vnfr_name)
        new = reply.vnfcInstance
        if new is None:
            added = [i for i in scaled.vnfc_instances() if i.id not in before]
            new = added[0] if added else None
        if new is None:
            raise VnfmError(f"VNFR {vnfr_name}: SCALED carries no new VNFC instance", vnfr=vnfr_name,
                            action="SCALE_OUT")
        if (new.state or "").upper() != "STANDBY":
            await self._reconfigure_targets(nsr, vnfr_name, scaled, new)
        return new

    async def _reconfigure_targets(self, nsr: NetworkServiceRecord, source: str,
                                   source_record: VirtualNetworkFunctionRecord, instance: VNFCInstance) -> None:
        """MODIFY every dependency target of ``source`` with only ``instance`` (ScaledTask / HealTask)."""
        for edge in targets_of(self.edges(nsr), source):
            if not nsr.vnfr(edge.target).instantiated:
                continue
            dep = build_scaled_dependency(edge.target, list(edge.parameters), source_record, instance,
                                          dependency_id=outgoing.new_id())
            await self._call(nsr, edge.target, outgoing.modify(self._current(nsr, edge.target), dep), ("MODIFY",))

    async def scale_in(self, nsr: NetworkServiceRecord, vnfr_name: str, vnfc_hostname: str) -> None:
        record = self._current(nsr, vnfr_name)
        removed = record.find_vnfc_instance(hostname=vnfc_hostname)
        if removed is None:
            raise OrchestratorError(f"VNFR {vnfr_name} has no VNFC instance {vnfc_hostname!r}")
        vdu = next(v for v in record.vdu or [] if removed in (v.vnfc_instance or []))
        if len(vdu.vnfc_instance or []) <= 1:
            raise OrchestratorError(f"cannot scale in VNFR {vnfr_name}: {vnfc_hostname} is the last VNFC instance "
                                    f"of its VDU")
        for edge in targets_of(self.edges(nsr), vnfr_name):
            target = nsr.vnfr(edge.target)
            if not target.instantiated or target.vnfr is None:
                continue
            body = outgoing.scale_in(self._current(nsr, edge.target), removed).to_json().encode()
            try:   # no answer expected (vnfm-ems §7.2)
                await self.transport.publish(self.endpoint_for(target.endpoint), body)
                target.history.append(HistoryEntry(action="SCALE_IN", result="sent", detail=vnfc_hostname))
            except TransportError as exc:
                log.error("event=scale_in_send_failed target=%s error=%r", edge.target, str(exc))
        remove_instance(record, vnfc_hostname)
        state = nsr.vnfr(vnfr_name)
        state.keep(record)
        errors = await self.resources.remove([vnfc_hostname])
        if not errors:
            state.hosts = [h for h in state.hosts if h != vnfc_hostname]
        self.emit(nsr, vnfr_name, action="SCALE_IN", hostname=vnfc_hostname, state="removed")
        if errors:
            raise OrchestratorError(f"VNFR {vnfr_name}: removing {vnfc_hostname} failed: {'; '.join(errors)}")

    async def heal(self, nsr: NetworkServiceRecord, vnfr_name: str, hostname: str,
                   cause: str) -> VirtualNetworkFunctionRecord:
        record = self._current(nsr, vnfr_name)
        instance = record.find_vnfc_instance(hostname=hostname)
        if instance is None:
            raise OrchestratorError(f"VNFR {vnfr_name} has no VNFC instance {hostname!r}")
        await self._call(nsr, vnfr_name, outgoing.heal(record, instance, cause), ("HEAL",))
        healed = self._current(nsr, vnfr_name)
        if cause == "switchToStandby":
            now_active = healed.find_vnfc_instance(hostname=hostname)
            if now_active is not None and (now_active.state or "").upper() == "ACTIVE":
                await self._reconfigure_targets(nsr, vnfr_name, healed, now_active)
        return healed

    async def update_script(self, nsr: NetworkServiceRecord, vnfr_name: str, script_name: str | None,
                            content: str | bytes | None) -> VirtualNetworkFunctionRecord:
        """UPDATE with a script (SCRIPTS_UPDATE on every VNFC; the package keeps the new version), or
        with ``script_name=None`` the UPDATE lifecycle event."""
        script = None
        if script_name is not None:
            payload = content.encode() if isinstance(content, str) else (content or b"")
            script = Script(id=outgoing.new_id(), name=script_name, payload=payload)
            bundle: ServiceBundle = nsr._bundle
            package = bundle.packages.get(vnfr_name) if bundle is not None else None
            if package is not None and not package.scripts_link:
                package.scripts = [s for s in package.scripts if s.name != script_name] + [script]
        await self._call(nsr, vnfr_name, outgoing.update(self._current(nsr, vnfr_name), script), ("UPDATE",))
        return self._current(nsr, vnfr_name)

    async def execute(self, nsr: NetworkServiceRecord, vnfr_name: str, script_text: str | bytes) -> dict[str, Any]:
        reply = await self._call(nsr, vnfr_name, outgoing.execute(self._current(nsr, vnfr_name), script_text),
                                 ("EXECUTE",))
        return reply.to_wire()

    async def resume(self, nsr: NetworkServiceRecord, vnfr_name: str) -> NfvMessage:
        """RESUME a VNFR in ERROR; the answer is the message of the resumed action (the caller
        continues the state machine from it, see ``deploy.Deployment.resume``)."""
        state = nsr.vnfr(vnfr_name)
        try:
            dep = self.dependency_for(nsr, vnfr_name)
        except OrchestratorError:       # a source without a record yet: resume without dependency
            dep = None
        previous_error = state.error
        state.status = "RESUMING"
        reply = await self._call(nsr, vnfr_name, outgoing.resume(self._current(nsr, vnfr_name), dep),
                                 ("INSTANTIATE", "MODIFY", "START", "STOP", "RELEASE_RESOURCES", "HEAL", "UPDATE",
                                  "SCALED", "EXECUTE"))
        if previous_error is not None and state.error is previous_error:
            state.error = None
        return reply

    async def logs(self, nsr: NetworkServiceRecord, vnfr_name: str, hostname: str) -> dict[str, list[str]]:
        state = nsr.vnfr(vnfr_name)
        if hostname not in state.hosts:
            raise OrchestratorError(f"VNFR {vnfr_name} has no VNFC instance {hostname!r}")
        reply = await self._call(nsr, vnfr_name, outgoing.log_request(vnfr_name, hostname), ("LOG_REQUEST",))
        assert isinstance(reply, VnfmOrLogMessage)
        return {"outputLog": list(reply.outputLog), "errorLog": list(reply.errorLog)}
