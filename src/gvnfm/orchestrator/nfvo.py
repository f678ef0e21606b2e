"""The local orchestrator's NFVO service: the NFVO side of the Open Baton wire protocol over a
``Transport`` (protocol reference §1-§5).

Its wire endpoint (``endpoint.NfvoEndpoint``) consumes registrations, the VNFMs' resource requests
(answered by ``grants.ResourceRequests`` against the VIM's capacity; hosts are created through the VIM)
and their notices (handed to ``LocalNfvo.on_notice``). ``LocalNfvo`` sends INSTANTIATE, MODIFY, START,
STOP, RELEASE_RESOURCES and the day-2 actions to a VNFM's endpoint queue as RPCs, keeping the records
(``records.NetworkServiceRecord``) up to date: every VNFR status change goes through ``lifecycle.apply``.
The script logs of the VNFCs are cached in ``logcache.LogCache``.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any

from gvnfm.catalogue.messages import (
    MessageError,
    NfvMessage,
    VnfmOrErrorMessage,
    VnfmOrGenericMessage,
    VnfmOrLogMessage,
    VnfmOrScaledMessage,
    exit_status_in,
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
from gvnfm.orchestrator.endpoint import NfvoEndpoint
from gvnfm.orchestrator.errors import Conflict, NotEnoughResources, OrchestratorError, VnfmError, VnfmRefused
from gvnfm.orchestrator.events import EventHub, ProgressEvent
from gvnfm.orchestrator.grants import ResourceRequests, pick_component
from gvnfm.orchestrator.lifecycle import Event, apply
from gvnfm.orchestrator.loader import ServiceBundle
from gvnfm.orchestrator.locks import VnfrLocks
from gvnfm.orchestrator.logcache import LogCache
from gvnfm.orchestrator.records import (
    ERROR,
    RESUMING,
    SCALING,
    TERMINATED,
    DependencyView,
    ErrorInfo,
    HistoryEntry,
    NetworkServiceRecord,
    VnfcProgress,
    VnfrState,
)
from gvnfm.orchestrator.registry import VnfmRegistry
from gvnfm.orchestrator.resources import Resources, remove_instance, vnfc_count
from gvnfm.transport import RpcTimeout, Transport, TransportError
from gvnfm.vim.base import Vim

log = logging.getLogger(__name__)


class CallMode(Enum):
    """How ``_call`` treats an ERROR answer."""

    FAIL = "fail"          # a lifecycle failure (the VNFR goes ERROR)
    DAY2 = "day2"          # ERROR too, unless the answer shows the VNFM changed nothing (refused: state kept)
    REPORT = "report"      # never a lifecycle failure (ad-hoc EXECUTE, LOG_REQUEST: §5.3, no error row)




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
        self.resources = Resources(vim)
        self.events = EventHub()
        self.registry = VnfmRegistry(endpoint_credentials)
        self.nsrs: dict[str, NetworkServiceRecord] = {}
        self.requests = ResourceRequests(self.resources, self.nsrs, self.emit)
        self.endpoint = NfvoEndpoint(transport, self.registry, self.requests, self.on_notice,
                                     queue_prefix=queue_prefix, answer_cache=answer_cache)
        self._tasks: set[asyncio.Task[None]] = set()
        #: requests to VNFMs whose answers ``_call`` is waiting for; ``stop_waiting`` gives up on them
        self._waiters: set[asyncio.Future[bytes]] = set()
        self._impatient = False
        #: one operation at a time per VNFR (``locks``)
        self.locks = VnfrLocks()
        #: progress updates seen per (NSR id, VNFR name): a VNFM that reported a step did something
        self._progress_seen: dict[tuple[str, str], int] = {}
        #: the script logs as last fetched; a log's version changes whenever the VNFC's script log may
        #: have (a progress update, an answered action of its VNFR); a cached log is trusted only when
        #: fetched ``log_cache.settle`` s after the last change and younger than ``log_cache.max_age`` s
        self.log_cache = LogCache()

    @property
    def registration_queue(self) -> str:
        return self.endpoint.registration_queue

    @property
    def sync_queue(self) -> str:
        return self.endpoint.sync_queue

    @property
    def async_queue(self) -> str:
        return self.endpoint.async_queue

    # == service ===================================================================================
    async def start(self) -> None:
        await self.endpoint.start()
        log.info("event=nfvo_started vim=%s queues=%s,%s,%s", self.vim.name, self.registration_queue,
                 self.sync_queue, self.async_queue)

    async def stop(self) -> None:
        await self.endpoint.stop()
        for task in list(self._tasks):
            task.cancel()

    def stop_waiting(self) -> None:
        """Wait for no VNFM answer any more (an operator's second Ctrl-C during the teardown): requests
        in flight fail at once with VnfmError, later ones fail without being sent."""
        self._impatient = True
        for waiter in list(self._waiters):
            waiter.cancel()

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

    # == notices from VNFMs (handed over by the endpoint) ===========================================
    def on_notice(self, msg: NfvMessage) -> None:
        """A result a VNFM sent without a request: the VNFR as received is kept; an ERROR notice puts the
        VNFR in ERROR."""
        vnfr = vnfr_of(msg)
        nsr_id = getattr(msg, "nsrId", None) or (vnfr.parent_ns_id if vnfr else None)
        nsr = self.nsrs.get(nsr_id or "")
        state = nsr.vnfrs.get(vnfr.name) if nsr is not None and vnfr is not None else None
        if nsr is None or state is None or vnfr is None:
            log.warning("event=notice_unmatched action=%s nsr=%s vnfr=%s", msg.action, nsr_id,
                        vnfr.name if vnfr else None)
            return
        state.keep(vnfr)
        self.log_cache.changed(state.hosts)
        if isinstance(msg, VnfmOrErrorMessage):
            detail, cause = _exception_text(msg)
            info = ErrorInfo.from_vnfm(vnfr.name, state.action or "ERROR", detail, cause, vnfr, msg.failedStep)
            log.error("event=vnfm_error_notice vnfr=%s error=%r", vnfr.name, info.message)
            apply(nsr, vnfr.name, Event.FAILED, self.emit, action="ERROR", error=info)
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
                    key = (nsr.id, state.name)
                    self._progress_seen[key] = self._progress_seen.get(key, 0) + 1
                    self.log_cache.changed([hostname])
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
            nsr.vnfds[name] = outgoing.onboard_vnfd(vnfd, package.id if package else None)
            nsr.vnfrs[name] = VnfrState(name=name, type=vnfd.type, endpoint=vnfd.endpoint)
        edges = merge_dependencies(nsd.vnfd, nsd.vnf_dependency or [])
        nsr.dependencies = [DependencyView(source=e.source, target=e.target, parameters=list(e.parameters))
                            for e in edges]
        nsr.cyclic = sorted(on_cycles(edges))
        nsr.bundle = bundle
        nsr.vlrs = outgoing.virtual_link_records(nsd, self.vim.name)
        self.nsrs[nsr.id] = nsr
        return nsr

    def reserve(self, nsr: NetworkServiceRecord) -> None:
        """Reserve hosts for every VNF of the service, or raise NotEnoughResources (nothing reserved)."""
        needs = {(nsr.id, name): vnfc_count(vnfd.vdu) for name, vnfd in nsr.vnfds.items()}
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
                    *, timeout: float | None = None, mode: CallMode = CallMode.FAIL) -> NfvMessage:
        """RPC to the VNFM of ``name``. ERROR answers, timeouts and unusable answers raise VnfmError and
        (``mode`` FAIL/DAY2) mark the VNFR ERROR. In DAY2 mode an ERROR answer that shows the
        VNFM changed nothing (no VNFC failed, no host created, no step reported) is a refusal: the VNFR
        keeps its state and VnfmRefused is raised. In REPORT mode the state never changes; the
        VnfmError carries the ERROR answer (``.reply``)."""
        state = nsr.vnfr(name)
        key = (nsr.id, name)
        routing_key = self.endpoint_for(state.endpoint)
        action = message.action
        # a query (LOG_REQUEST) is no operation: it leaves the action in progress and the history alone
        query = action == "LOG_REQUEST"
        if not query:
            state.action = action
            state.history.append(HistoryEntry(action=action, result="sent"))
            self.emit(nsr, name, action=action, state=state.status, message="sent")
        limit = self.reply_timeout if timeout is None else timeout
        hosts_before, progress_before = list(state.hosts), self._progress_seen.get(key, 0)
        log.info("event=send action=%s vnfr=%s endpoint=%s", action, name, routing_key)

        def fail(text: str, info: ErrorInfo | None = None, reply: NfvMessage | None = None) -> VnfmError:
            if not query:
                state.action = None
            error = info or ErrorInfo(vnfr=name, action=action, message=text)
            if mode is CallMode.REPORT:
                state.history.append(HistoryEntry(action=action, result="failed", detail=error.message))
                self.emit(nsr, name, action=action, state=state.status, hostname=error.hostname,
                          message=error.message)
                log.warning("event=action_failed action=%s vnfr=%s state_kept=%s error=%r", action, name,
                            state.status, error.message)
                return VnfmError(f"VNFR {name}: {action} failed: {error.message}", vnfr=name, action=action,
                                 reply=reply)
            state.history.append(HistoryEntry(action=action, result="ERROR", detail=error.message))
            apply(nsr, name, Event.FAILED, self.emit, action=action, error=error)
            log.error("event=action_failed action=%s vnfr=%s error=%r", action, name, error.message)
            return VnfmError(f"VNFR {name}: {action} failed: {error.message}", vnfr=name, action=action,
                             reply=reply)

        waiter: asyncio.Future[bytes] | None = None
        try:
            if self._impatient:
                raise fail("not sent: the orchestrator waits for no VNFM answer any more (teardown interrupted)")
            # as the Java NFVO (RabbitVnfmSender): a reply address per request, no correlation id
            waiter = asyncio.ensure_future(self.transport.request(routing_key, message.to_json().encode(),
                                                                  timeout=limit))
            self._waiters.add(waiter)
            try:
                raw = await waiter
            finally:
                self._waiters.discard(waiter)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if self._impatient and waiter is not None and waiter.cancelled() and task is not None \
                    and not task.cancelling():
                raise fail("the answer was not awaited (teardown interrupted)") from exc
            raise
        except RpcTimeout as exc:
            raise fail(f"the VNFM (endpoint {routing_key!r}) did not answer within {limit:g} s") from exc
        except TransportError as exc:
            raise fail(f"sending to the VNFM (endpoint {routing_key!r}) failed: {exc}") from exc
        finally:
            if not query:
                self.log_cache.changed(state.hosts)
        try:
            reply = parse_vnfm_message(raw)
        except MessageError as exc:
            raise fail(f"the VNFM's answer is unusable: {exc}") from exc
        record = vnfr_of(reply)
        if record is not None and record.name != name:
            record = None
        if isinstance(reply, VnfmOrErrorMessage):
            detail, cause = _exception_text(reply)
            info = ErrorInfo.from_vnfm(name, action, detail, cause, record, reply.failedStep)
            if mode is CallMode.DAY2 and self._changed_nothing(key, state, hosts_before, progress_before, record, info):
                state.action = None
                state.history.append(HistoryEntry(action=action, result="refused", detail=info.message))
                self.emit(nsr, name, action=action, state=state.status, message=f"refused: {info.message}")
                log.warning("event=action_refused action=%s vnfr=%s state=%s reason=%r", action, name,
                            state.status, info.message)
                raise VnfmRefused(f"VNFR {name}: the VNFM refused {action}: {info.message} (nothing was changed)",
                                  vnfr=name, action=action, reply=reply)
            if record is not None and mode is not CallMode.REPORT:
                state.keep(record)
            raise fail("", info, reply)
        if record is not None:
            state.keep(record)
        if reply.action not in expect:
            raise fail(f"the VNFM answered {reply.action} (expected {' or '.join(expect)})")
        if not query:
            state.action = None
            state.history.append(HistoryEntry(action=action, result="ok", detail=reply.action))
            self.emit(nsr, name, action=action, state=state.status, message="answered")
        return reply

    def _changed_nothing(self, key: tuple[str, str], state: VnfrState, hosts_before: list[str],
                         progress_before: int, record: VirtualNetworkFunctionRecord | None, info: ErrorInfo) -> bool:
        """An ERROR answer that shows no trace of work: no VNFC named as failed or in state error, no
        host created for the VNFR, no step reported through the progress hook."""
        if info.hostname or info.script:
            return False
        if record is not None and any((i.state or "").lower() == "error" for i in record.vnfc_instances()):
            return False
        return state.hosts == hosts_before and self._progress_seen.get(key, 0) == progress_before

    def log_version(self, hostname: str) -> int:
        """Changes whenever the script log of ``hostname`` may have changed."""
        return self.log_cache.version(hostname)

    def _check_day2(self, nsr: NetworkServiceRecord, name: str) -> VnfrState:
        state = nsr.vnfr(name)
        if nsr.terminating or nsr.status == TERMINATED:
            raise Conflict(f"network service {nsr.name} is being torn down: no day-2 operation on VNFR {name}")
        return state

    def _targets(self, nsr: NetworkServiceRecord, source: str) -> list[str]:
        return [e.target for e in targets_of(self.edges(nsr), source) if nsr.vnfr(e.target).instantiated]

    # -- lifecycle -----------------------------------------------------------------------------------
    async def instantiate(self, nsr: NetworkServiceRecord, name: str) -> VirtualNetworkFunctionRecord:
        vnfd = nsr.vnfds[name]
        content = nsr.bundle.packages.get(name) if nsr.bundle is not None else None
        message = outgoing.instantiate(
            vnfd, content.to_package() if content else None, nsr_id=nsr.id, vim_name=self.vim.name,
            vlrs=nsr.vlrs, broker_ip=self.broker_ip, broker_port=self.broker_port, timezone=self.timezone)
        async with self.locks.hold(nsr.id, name, "INSTANTIATE"):
            await self._call(nsr, name, message, ("INSTANTIATE",))
            state = nsr.vnfr(name)
            state.instantiated = True
            apply(nsr, name, Event.INSTANTIATED, self.emit)
            self.resources.release((nsr.id, name))
            return self._current(nsr, name)

    async def restart(self, nsr: NetworkServiceRecord, name: str, image: str | None = None, *,
                      wait: bool = True) -> VirtualNetworkFunctionRecord:
        """Restart a VNFR as the Java NFVO does (``restartVnfr``): rebuild every host of it (same names,
        addresses and user-data, a fresh disk of ``image``, default its own), then INSTANTIATE carrying the
        VNFR, "so the allocate resources will be skipped": the VNFM asks for no GRANT_OPERATION and no
        ALLOCATE_RESOURCES and runs the INSTANTIATE scripts on the rebuilt VNFCs. The VNFR ends
        INITIALIZED; the caller continues with MODIFY and START (``Deployment.restart``)."""
        self._check_day2(nsr, name)
        async with self.locks.hold(nsr.id, name, "RESTART", wait=wait):
            state = nsr.vnfr(name)
            record = self._current(nsr, name)
            if not state.hosts:
                raise Conflict(f"VNFR {name} has no hosts to restart")
            if image is not None:
                for vdu in record.vdu or []:
                    vdu.vm_image = [image]
            apply(nsr, name, Event.RESTARTING, self.emit)
            hosts = list(state.hosts)
            results = await asyncio.gather(*(self.vim.rebuild_host(h, image) for h in hosts), return_exceptions=True)
            failed = [f"{h}: {r}" for h, r in zip(hosts, results, strict=True) if isinstance(r, BaseException)]
            state.hosts = [h for h in hosts if h in self.vim.hosts]
            for h, r in zip(hosts, results, strict=True):
                if not isinstance(r, BaseException):
                    self.emit(nsr, name, action="RESTART", hostname=h, state="host rebuilt")
            if failed:
                text = f"rebuilding the hosts of VNFR {name} failed: {'; '.join(failed)}"
                apply(nsr, name, Event.NFVO_FAILED, self.emit,
                      error=ErrorInfo(vnfr=name, action="RESTART", message=text))
                raise OrchestratorError(text)
            state.keep(record)
            content = nsr.bundle.packages.get(name) if nsr.bundle is not None else None
            message = outgoing.instantiate(
                nsr.vnfds[name], content.to_package() if content else None, nsr_id=nsr.id, vim_name=self.vim.name,
                vlrs=nsr.vlrs, broker_ip=self.broker_ip, broker_port=self.broker_port, timezone=self.timezone,
                vnfr=self._current(nsr, name))
            await self._call(nsr, name, message, ("INSTANTIATE",))
            state.configured = False
            apply(nsr, name, Event.INSTANTIATED, self.emit)
            return self._current(nsr, name)

    async def modify(self, nsr: NetworkServiceRecord, name: str,
                     dependency: VNFRecordDependency | None = None) -> VirtualNetworkFunctionRecord:
        async with self.locks.hold(nsr.id, name, "MODIFY"):
            dep = dependency or self.dependency_for(nsr, name)
            if dep is None:
                raise OrchestratorError(f"VNFR {name} is not a dependency target: nothing to MODIFY")
            await self._call(nsr, name, outgoing.modify(self._current(nsr, name), dep), ("MODIFY",))
            nsr.vnfr(name).configured = True
            apply(nsr, name, Event.CONFIGURED, self.emit)
            return self._current(nsr, name)

    async def start_vnf(self, nsr: NetworkServiceRecord, name: str, hostname: str | None = None, *,
                        wait: bool = True) -> VirtualNetworkFunctionRecord:
        return await self._start_stop("START", nsr, name, hostname, wait)

    async def stop_vnf(self, nsr: NetworkServiceRecord, name: str, hostname: str | None = None, *,
                       wait: bool = True) -> VirtualNetworkFunctionRecord:
        return await self._start_stop("STOP", nsr, name, hostname, wait)

    async def _start_stop(self, action: str, nsr: NetworkServiceRecord, name: str,
                          hostname: str | None, wait: bool) -> VirtualNetworkFunctionRecord:
        async with self.locks.hold(nsr.id, name, action, wait=wait):
            state = nsr.vnfr(name)
            record = self._current(nsr, name)
            instance = None
            if hostname is not None:
                instance = record.find_vnfc_instance(hostname=hostname)
                if instance is None:
                    raise OrchestratorError(f"VNFR {name} has no VNFC instance {hostname!r}")
            # a VNF started before: this START/STOP is a day-2 request (a refusal keeps the state)
            day2 = any(h.action == "START" and h.result == "ok" for h in state.history)
            await self._call(nsr, name, outgoing.start_stop(action, record, instance), (action,),
                             mode=CallMode.DAY2 if day2 else CallMode.FAIL)
            if instance is None:
                apply(nsr, name, Event.STARTED if action == "START" else Event.STOPPED, self.emit)
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
                        mode: str | None = None, *, wait: bool = True) -> VNFCInstance:
        """SCALE_OUT one VNFC instance, then MODIFY the dependency targets with it (unless standby).
        Holds the VNFR and its targets throughout, so the scale_in_out check, the SCALING answer and the
        record update of one scale-out never interleave with another's."""
        self._check_day2(nsr, vnfr_name)
        async with self.locks.hold(nsr.id, vnfr_name, "SCALE_OUT", others=self._targets(nsr, vnfr_name),
                                   wait=wait):
            return await self._scale_out(nsr, vnfr_name, vnfc_component_id, mode)

    async def _scale_out(self, nsr: NetworkServiceRecord, vnfr_name: str, vnfc_component_id: str | None,
                         mode: str | None) -> VNFCInstance:
        record = self._current(nsr, vnfr_name)
        pick = pick_component(record, vnfc_component_id)
        if isinstance(pick, str):
            raise OrchestratorError(f"cannot scale out VNFR {vnfr_name}: {pick}")
        vdu, template = pick
        if self.resources.available() < 1:
            raise NotEnoughResources(f"Not enough resources for scaling out VNFR {vnfr_name}")
        content = nsr.bundle.packages.get(vnfr_name) if nsr.bundle is not None else None
        before = {i.id for i in record.vnfc_instances()}
        key = (nsr.id, vnfr_name)
        # one slot per VNFR is enough: the VNFR is held, so one SCALE_OUT (and its SCALING) at a time
        # as the Java NFVO (addVNFCInstance): a new VNFComponent in the VDU, sent as SCALE_OUT's component
        component = outgoing.new_component(template)
        vdu.vnfc = [*(vdu.vnfc or []), component]
        self.requests.pending_scale[key] = (component.id, mode)
        previous = nsr.vnfr(vnfr_name).status
        apply(nsr, vnfr_name, Event.SCALING_OUT, self.emit)
        message = outgoing.scale_out(
            record, VNFComponent.model_validate(component.to_wire()), content.to_package() if content else None,
            self.dependency_for(nsr, vnfr_name), mode, nsr_id=nsr.id, vim_name=self.vim.name,
            broker_ip=self.broker_ip, broker_port=self.broker_port, timezone=self.timezone)
        try:
            reply = await self._call(nsr, vnfr_name, message, ("SCALED",), mode=CallMode.DAY2)
        except BaseException:
            if nsr.vnfr(vnfr_name).status == SCALING:    # refused, or cancelled: back to where it was
                apply(nsr, vnfr_name, Event.SCALE_OUT_DROPPED, self.emit, previous=previous)
            raise
        finally:
            self.requests.pending_scale.pop(key, None)
        assert isinstance(reply, VnfmOrScaledMessage)
        apply(nsr, vnfr_name, Event.SCALED, self.emit, previous=previous)
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

    async def scale_in(self, nsr: NetworkServiceRecord, vnfr_name: str, vnfc_hostname: str, *,
                       wait: bool = True) -> None:
        self._check_day2(nsr, vnfr_name)
        async with self.locks.hold(nsr.id, vnfr_name, "SCALE_IN", others=self._targets(nsr, vnfr_name),
                                   wait=wait):
            await self._scale_in(nsr, vnfr_name, vnfc_hostname)

    async def _scale_in(self, nsr: NetworkServiceRecord, vnfr_name: str, vnfc_hostname: str) -> None:
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
            # sent as every command (with a reply address); as the Java NFVO (removeVnfcDependency is
            # @Async) the scale-in goes on without waiting for the answer (`null` from the Java VNFM),
            # nor for the sending: a command sent after scale_in returned (LOG_REQUEST) may reach the
            # VNFM first, as with the Java NFVO (the VNFM runs commands concurrently anyway)
            target.history.append(HistoryEntry(action="SCALE_IN", result="sent", detail=vnfc_hostname))
            self.log_cache.changed(target.hosts)
            self._background(self._scale_in_target(edge.target, self.endpoint_for(target.endpoint), body,
                                                   target.hosts))
        remove_instance(record, vnfc_hostname)
        state = nsr.vnfr(vnfr_name)
        state.keep(record)
        errors = await self.resources.remove([vnfc_hostname])
        if not errors:
            state.hosts = [h for h in state.hosts if h != vnfc_hostname]
        self.emit(nsr, vnfr_name, action="SCALE_IN", hostname=vnfc_hostname, state="removed")
        if errors:
            raise OrchestratorError(f"VNFR {vnfr_name}: removing {vnfc_hostname} failed: {'; '.join(errors)}")

    async def _scale_in_target(self, target: str, routing_key: str, body: bytes, hosts: list[str]) -> None:
        try:
            answer = await self.transport.request(routing_key, body, timeout=self.reply_timeout)
        except TransportError as exc:
            log.error("event=scale_in_unanswered target=%s error=%r", target, str(exc))
            return
        finally:
            self.log_cache.changed(hosts)
        log.info("event=scale_in_answered target=%s answer=%r", target, answer[:200])

    def _background(self, coro: Any) -> None:
        """Run ``coro`` on its own (cancelled by ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def heal(self, nsr: NetworkServiceRecord, vnfr_name: str, hostname: str, cause: str, *,
                   wait: bool = True) -> VirtualNetworkFunctionRecord:
        self._check_day2(nsr, vnfr_name)
        standby = cause == "switchToStandby"
        async with self.locks.hold(nsr.id, vnfr_name, "HEAL", others=self._targets(nsr, vnfr_name) if standby else (),
                                   wait=wait):
            record = self._current(nsr, vnfr_name)
            instance = record.find_vnfc_instance(hostname=hostname)
            if instance is None:
                raise OrchestratorError(f"VNFR {vnfr_name} has no VNFC instance {hostname!r}")
            if standby and (instance.state or "").upper() != "STANDBY":
                raise Conflict(f"VNFC {hostname} of VNFR {vnfr_name} is {instance.state or 'in no state'}, not "
                               "STANDBY: switchToStandby only activates a standby VNFC")
            if standby and record.scripts_of("START") is None:
                raise OrchestratorError(f"VNFR {vnfr_name} has no START lifecycle event: switchToStandby could not "
                                        f"start {hostname}")
            await self._call(nsr, vnfr_name, outgoing.heal(record, instance, cause), ("HEAL",), mode=CallMode.DAY2)
            healed = self._current(nsr, vnfr_name)
            if standby:
                now_active = healed.find_vnfc_instance(hostname=hostname)
                if now_active is not None and (now_active.state or "").upper() == "ACTIVE":
                    await self._reconfigure_targets(nsr, vnfr_name, healed, now_active)
            return healed

    async def update_script(self, nsr: NetworkServiceRecord, vnfr_name: str, script_name: str | None,
                            content: str | bytes | None, *, wait: bool = True) -> VirtualNetworkFunctionRecord:
        """UPDATE with a script (SCRIPTS_UPDATE on every VNFC; the package keeps the new version), or
        with ``script_name=None`` the UPDATE lifecycle event (none: the VNFM runs nothing, as for HEAL)."""
        self._check_day2(nsr, vnfr_name)
        async with self.locks.hold(nsr.id, vnfr_name, "UPDATE", wait=wait):
            record = self._current(nsr, vnfr_name)
            script = None
            if script_name is not None:
                payload = content.encode() if isinstance(content, str) else (content or b"")
                script = Script(id=outgoing.new_id(), name=script_name, payload=payload)
                package = nsr.bundle.packages.get(vnfr_name) if nsr.bundle is not None else None
                if package is not None and not package.scripts_link:
                    package.scripts = [s for s in package.scripts if s.name != script_name] + [script]
            await self._call(nsr, vnfr_name, outgoing.update(record, script), ("UPDATE",), mode=CallMode.DAY2)
            return self._current(nsr, vnfr_name)

    async def execute(self, nsr: NetworkServiceRecord, vnfr_name: str, script_text: str | bytes, *,
                      wait: bool = True) -> dict[str, Any]:
        """Run an ad-hoc script on every VNFC. A failing script is no lifecycle failure (§5.3: no error
        row, not resumable): the VNFR keeps its state and the caller gets, per VNFC, what happened:
        ``{"action", "ok", "results": [{"hostname", "status", "output", "err"}], "failed": [hostnames],
        "error"}``. The results are the VNFM's ``scriptResults`` (sent with EXECUTE and, by gvnfm's VNFM,
        with ERROR); from an ERROR answer without them, the failed VNFC named in its message."""
        if not script_text.strip():
            raise OrchestratorError("the script is empty")
        self._check_day2(nsr, vnfr_name)
        async with self.locks.hold(nsr.id, vnfr_name, "EXECUTE", wait=wait):
            record = self._current(nsr, vnfr_name)
            error = None
            try:
                reply = await self._call(nsr, vnfr_name, outgoing.execute(record, script_text), ("EXECUTE",),
                                         mode=CallMode.REPORT)
            except VnfmError as exc:
                if exc.reply is None:           # no answer (timeout, unusable): nothing to report per VNFC
                    raise
                reply, error = exc.reply, str(exc)
        results = _script_results(reply)
        if error is not None and not results:
            assert isinstance(reply, VnfmOrErrorMessage)
            detail, cause = _exception_text(reply)
            info = ErrorInfo.from_vnfm(vnfr_name, "EXECUTE", detail, cause, None, reply.failedStep)
            if info.hostname is None:           # no VNFC named: the VNFM refused the request
                raise VnfmRefused(error, vnfr=vnfr_name, action="EXECUTE", reply=reply)
            status = reply.failedStep.status if reply.failedStep is not None else None
            if status is None:                  # a VNFM without gvnfm's field: what its text says
                status = exit_status_in(info.message)
            results = [{"hostname": info.hostname, "status": 1 if status is None else status, "output": "",
                        "err": info.stderr or info.message}]
        failed = [str(r.get("hostname")) for r in results if r.get("status") != 0]
        if error is not None and not failed:
            failed = [str(r.get("hostname")) for r in results]
        return {"action": reply.action, "ok": error is None and not failed, "results": results,
                "failed": failed, "error": error}

    async def resume(self, nsr: NetworkServiceRecord, vnfr_name: str, *, wait: bool = True) -> NfvMessage:
        """RESUME a VNFR in ERROR; the answer is the message of the resumed action (the caller
        continues the state machine from it, see ``deploy.Deployment.resume``)."""
        self._check_day2(nsr, vnfr_name)
        async with self.locks.hold(nsr.id, vnfr_name, "RESUME", wait=wait):
            state = nsr.vnfr(vnfr_name)
            if state.status != ERROR:
                raise Conflict(f"VNFR {vnfr_name} is {state.status}, not ERROR: RESUME continues a VNFR whose "
                               "scripts failed")
            try:
                dep = self.dependency_for(nsr, vnfr_name)
            except OrchestratorError:       # a source without a record yet: resume without dependency
                dep = None
            previous_error = state.error
            apply(nsr, vnfr_name, Event.RESUMING, self.emit)
            try:
                reply = await self._call(nsr, vnfr_name, outgoing.resume(self._current(nsr, vnfr_name), dep),
                                         ("INSTANTIATE", "MODIFY", "START", "STOP", "RELEASE_RESOURCES", "HEAL",
                                          "UPDATE", "SCALED", "EXECUTE"), mode=CallMode.DAY2)
            except BaseException:
                if state.status == RESUMING:    # refused (nothing to resume), or cancelled: still ERROR
                    apply(nsr, vnfr_name, Event.RESUME_DROPPED, self.emit)
                raise
            if previous_error is not None and state.error is previous_error:
                state.error = None
            return reply

    async def logs(self, nsr: NetworkServiceRecord, vnfr_name: str, hostname: str, *,
                   since: int | None = None) -> dict[str, Any]:
        """The script logs of one VNFC (LOG_REQUEST): ``{"outputLog", "errorLog", "version"}``.

        With ``since`` (the ``version`` of an earlier answer, as ``logs --follow`` polls), the VNFM is
        asked only when the log may have changed since: a progress update or an answered action of the
        VNFR changes the version. Otherwise the last answer is given again (``"cached": true``), if it
        was fetched ``log_cache.settle`` s after the last change and is younger than ``log_cache.max_age``
        s. Each LOG_REQUEST is an operation the VNFM stores, so an idle follow stores next to nothing."""
        state = nsr.vnfr(vnfr_name)
        if hostname not in state.hosts:
            raise OrchestratorError(f"VNFR {vnfr_name} has no VNFC instance {hostname!r}")
        version = self.log_cache.version(hostname)
        cached = self.log_cache.cached(hostname, since)
        if cached is not None:
            return {**cached, "version": version, "cached": True}
        fetched_at = self.log_cache.clock()
        reply = await self._call(nsr, vnfr_name, outgoing.log_request(vnfr_name, hostname), ("LOG_REQUEST",),
                                 mode=CallMode.REPORT)
        assert isinstance(reply, VnfmOrLogMessage)
        result = {"outputLog": list(reply.outputLog), "errorLog": list(reply.errorLog)}
        self.log_cache.keep(hostname, version, fetched_at, result)     # unless it changed while asking
        return {**result, "version": version, "cached": False}


def _script_results(reply: NfvMessage) -> list[dict[str, Any]]:
    """The per-VNFC results of an ad-hoc EXECUTE answer (gvnfm's ``scriptResults``)."""
    if not isinstance(reply, VnfmOrGenericMessage | VnfmOrErrorMessage):
        return []
    return [{"hostname": r.hostname, "status": r.status, "output": r.output or "", "err": r.err or ""}
            for r in reply.scriptResults or []]
