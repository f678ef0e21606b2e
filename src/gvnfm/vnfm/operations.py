"""What the VNFM does for each NFVO action (the controller layer).

Each handler turns a message into plans (``gvnfm.vnfm.plan``, pure), runs them through the executor
and returns the reply for the NFVO (``None`` for actions the NFVO expects no answer to). Progress is
recorded per step by the executor's recorder, so a handler re-run for the same operation (after a
crash, or as RESUME) skips what is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gvnfm.catalogue import userdata
from gvnfm.catalogue.ems import TLS_PROTOCOLS
from gvnfm.catalogue.messages import (
    NO_ANSWER,
    FailedStep,
    NfvMessage,
    OrVnfmErrorMessage,
    OrVnfmExecuteScriptMessage,
    OrVnfmGenericMessage,
    OrVnfmGrantLifecycleOperationMessage,
    OrVnfmHealVNFRequestMessage,
    OrVnfmInstantiateMessage,
    OrVnfmLogMessage,
    OrVnfmScalingMessage,
    OrVnfmStartStopMessage,
    OrVnfmUpdateMessage,
    ScriptResult,
    VnfmOrAllocateResourcesMessage,
    VnfmOrGenericMessage,
    VnfmOrHealedMessage,
    VnfmOrInstantiateMessage,
    VnfmOrLogMessage,
    VnfmOrScaledMessage,
    VnfmOrScalingMessage,
    VnfmOrStartStopMessage,
    error_message,
    parse_nfvo_message,
    vnfr_of,
)
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFCInstance
from gvnfm.catalogue.scripts import Script
from gvnfm.ops import metrics
from gvnfm.store.api import OperationContext, StepResult, Store
from gvnfm.vnfm import outcomes
from gvnfm.vnfm import plan as plans
from gvnfm.vnfm.broker_users import BrokerUsers, ManagementError, new_user_name, vnfr_hosts_pattern
from gvnfm.vnfm.environment import base_env, removing_env
from gvnfm.vnfm.executor import PlanExecutor, StepFailed, StepOutcome
from gvnfm.vnfm.nfvo_client import NfvoClient, NfvoError
from gvnfm.vnfm.record_builder import RecordError, build_vnfr
from gvnfm.vnfm.registrations import RegistrationBook
from gvnfm.vnfm.settings import VnfmSettings

log = logging.getLogger(__name__)

#: The action RESUME answers for the lifecycle event whose script failed (the reference's
#: ``getResumedAction`` mapping; used for a resumed SCALE_OUT, whose steps are INSTANTIATE, CONFIGURE, START).
RESUMED_ACTION = {"INSTANTIATE": "INSTANTIATE", "DELIVER": "INSTANTIATE", "CONFIGURE": "MODIFY", "START": "START"}


class OperationError(Exception):
    """The operation cannot complete; the text is what the NFVO's ERROR message says."""

    def __init__(self, text: str, vnfr: VirtualNetworkFunctionRecord | None = None, cause: str | None = None, *,
                 step: FailedStep | None = None):
        super().__init__(text)
        self.vnfr = vnfr
        self.cause = cause
        self.step = step      # the EMS command that failed (the ERROR's ``failedStep``)


class NfvoRefused(OperationError):
    """The NFVO answered ERROR (e.g. not enough resources)."""


class ScriptsFailed(OperationError):
    """An ad-hoc EXECUTE failed on some VNFCs; ``results`` (one per VNFC) go into the ERROR reply's
    ``scriptResults`` (gvnfm's field: Gson on the NFVO side ignores it)."""

    def __init__(self, text: str, vnfr: VirtualNetworkFunctionRecord | None, cause: str | None,
                 results: list[dict[str, Any]]):
        super().__init__(text, vnfr, cause)
        self.results = results


@dataclass
class OperationState:
    """One operation in progress: its id, what is done, and the context a re-run needs."""

    op_id: str
    done: set[str] = field(default_factory=set)          # step ids already successful
    context: OperationContext = field(default_factory=OperationContext)


ProgressHook = Callable[[dict[str, Any]], None]


def broker_vhost(url: str) -> str:
    """The virtual host of an ``amqp://`` or ``stomp://`` URL ("" for the default ``/``)."""
    if not url.startswith(("amqp://", "amqps://", "stomp://", "stomp+ssl://")):
        return ""
    path = urlsplit(url).path
    return unquote(path[1:]) if path.startswith("/") and len(path) > 1 else ""


#: the default ports of the EMS broker protocols the VMs are told about directly
_DIRECT_PORTS = {"stomp": 61613, "stomp+ssl": 61613, "amqps": 5671}


def ems_bootstrap(settings: VnfmSettings, extension: dict[str, Any]) -> userdata.EmsBootstrap:
    """What a VM's EMS is told (its user-data): the NFVO's AMQP broker (``brokerIp``/``brokerPort`` of the
    message's extension), as the reference does; or, when the VNFM's EMS broker (``--ems-broker``) is
    STOMP or AMQP over TLS, that broker's address, port and protocol, and with a ``cafile`` the CA's PEM
    (the VM verifies the broker with it). Raises OSError when that file cannot be read."""
    ems_url = settings.ems_broker_url()
    parts = urlsplit(ems_url)
    direct = parts.scheme in _DIRECT_PORTS
    cafile = parse_qs(parts.query).get("cafile", [""])[-1] if parts.scheme in TLS_PROTOCOLS else ""
    broker_ca = Path(cafile).read_text(encoding="ascii") if cafile else ""
    return userdata.EmsBootstrap(
        broker_ip=(parts.hostname or "localhost") if direct else str(extension.get("brokerIp") or "localhost"),
        broker_port=(parts.port or _DIRECT_PORTS[parts.scheme]) if direct else int(extension.get("brokerPort") or 5672),
        protocol=parts.scheme if direct else "", broker_ca=broker_ca,
        username=settings.ems_username, password=settings.ems_password,
        heartbeat=settings.ems_heartbeat, autodelete=settings.ems_autodelete,
        endpoint=settings.endpoint, ems_version=settings.ems_version,
        package_version=settings.ems_package_version,
        monitoring_ip=str(extension.get("monitoringIp") or ""), timezone=str(extension.get("timezone") or ""),
        virtual_host=broker_vhost(ems_url))


class Operations:
    def __init__(self, settings: VnfmSettings, *, nfvo: NfvoClient, executor: PlanExecutor,
                 registrations: RegistrationBook, store: Store, limiter: asyncio.Semaphore | None = None,
                 progress: ProgressHook | None = None, boot: userdata.EmsBootstrap | None = None,
                 worker: str | None = None) -> None:
        self.settings = settings
        self.worker = worker            # context writes only while this worker holds the lease
        self.nfvo = nfvo
        self.executor = executor
        self.registrations = registrations
        self.store = store
        self.limiter = limiter
        self.progress = progress
        self.boot = boot
        self._advertised: tuple[str, int] = (boot.broker_ip, boot.broker_port) if boot else ("localhost", 5672)
        self.host_users: BrokerUsers | None = None   # a broker user per user-data (set by the service)

    async def _save_context(self, state: OperationState, context: OperationContext | None = None) -> None:
        """Store what a re-run needs (``context``, default: the state's) before anything that depends on
        it is done; :class:`LeaseLost` (which stops the run) when another worker has taken the operation
        over."""
        await self.store.set_context(state.op_id, state.context if context is None else context, worker=self.worker)

    # -- entry point ------------------------------------------------------------------------------
    async def handle(self, msg: NfvMessage, state: OperationState) -> NfvMessage | None:
        """Run the handler of ``msg.action``. The operation deadline is the caller's (the service
        counts it from the operation's creation, across takeovers)."""
        handler: Callable[[Any, OperationState], Awaitable[NfvMessage | None]] | None = getattr(
            self, f"_on_{msg.action.lower()}", None)
        if handler is None:
            raise OperationError(f"action {msg.action} is not handled by a VNFM", vnfr_of(msg))
        try:
            return await handler(msg, state)
        except plans.PlanError as exc:   # a record the plan cannot use: say what is wrong with it
            vnfr = vnfr_of(msg)
            raise OperationError(f"{msg.action} refused: the VNFR {getattr(vnfr, 'name', None)!r} is not usable: "
                                 f"{exc}", vnfr) from exc

    # -- plan execution --------------------------------------------------------------------------
    async def _run(self, vnfr: VirtualNetworkFunctionRecord, plan: plans.Plan, state: OperationState, *,
                   collect: list[StepOutcome] | None = None, mark_failed: bool = True) -> list[StepOutcome]:
        """Run what of ``plan`` is not done yet. ``collect`` receives every outcome as it is recorded,
        failed ones included; ``mark_failed`` puts the failing VNFC in state ``error``."""
        todo = plan.without(state.done)

        async def record(batch: list[StepOutcome]) -> None:
            await self.store.record_steps([StepResult(
                operation_id=state.op_id, step_id=o.step.step_id, action=o.step.action, event=o.step.event,
                script_index=o.step.script_index, script=o.step.script, hostname=o.step.hostname,
                vnfr_name=vnfr.name, status=o.reply.status, output=o.reply.output, error=o.reply.err,
                started_at=o.started_at, duration=o.duration) for o in batch])
            state.done.update(o.step.step_id for o in batch if o.reply.status == 0)
            if collect is not None:
                collect.extend(batch)

        def progress(step: plans.Step, status: str) -> None:
            if self.progress:
                self.progress({"vnfr": vnfr.name, "hostname": step.hostname, "event": step.event,
                               "script": step.script, "action": step.action, "status": status})

        try:
            return await self.executor.run(todo, op_id=state.op_id, record=record, progress=progress,
                                           limiter=self.limiter)
        except StepFailed as failed:
            inst = vnfr.find_vnfc_instance(hostname=failed.outcome.step.hostname)
            if inst is not None and mark_failed:
                inst.state = "error"
            raise OperationError(str(failed), vnfr, failed.outcome.reply.err, step=failed.failed_step) from failed

    async def _wait_for_ems(self, vnfr: VirtualNetworkFunctionRecord, hostnames: list[str]) -> None:
        if self.progress:
            for h in hostnames:
                self.progress({"vnfr": vnfr.name, "hostname": h, "event": "EMS", "script": "",
                               "action": "WAIT", "status": "running"})
        waited = time.monotonic()
        half = asyncio.get_running_loop().call_later(self.settings.ems_start_timeout / 2, self._diagnose_wait,
                                                     vnfr.name, hostnames)
        try:
            missing = await self.registrations.wait(hostnames, self.settings.ems_start_timeout)
        finally:
            half.cancel()
        metrics.EMS_WAIT_SECONDS.observe(time.monotonic() - waited)
        metrics.EMS_WAITS.labels("timeout" if missing else "registered").inc()
        if missing:
            raise OperationError(f"Timeout waiting for EMS: {', '.join(missing)} did not register within "
                                 f"{self.settings.ems_start_timeout:g} s", vnfr)

    def _diagnose_wait(self, vnfr_name: str, hostnames: list[str]) -> None:
        """Once per wait, at half the EMS deadline: which hosts are silent and the usual causes."""
        from gvnfm.ops.doctor import ems_wait_diagnosis

        missing = [h for h in hostnames if not self.registrations.is_registered(h)]
        if not missing:
            return
        ip, port = self._advertised
        log.warning("event=ems_wait_half_deadline vnfr=%s waited=%.0fs %s", vnfr_name,
                    self.settings.ems_start_timeout / 2,
                    ems_wait_diagnosis(missing=missing, registered=len(hostnames) - len(missing),
                                       endpoint=self.settings.endpoint, broker_ip=ip, broker_port=port,
                                       vhost=broker_vhost(self.settings.ems_broker_url()) or "/",
                                       ems_user=self.settings.ems_username))

    async def _host_user(self, vnfr_name: str | None, state: OperationState) -> tuple[str, str] | None:
        """A broker user of their own for the VMs of the user-data about to be sent (see
        ``broker_users``); None: the shared EMS credentials. Its name is stored in the operation's
        context before the user exists (a user nothing names is a leak, ``sweep_host_users``), and a
        worker that takes the operation over before the request was asked makes the same user again with
        a new password. Called only when the request was not asked yet (``NfvoClient.asked``): once it
        may have gone out, the hosts hold that user-data's password and nothing changes the user."""
        text = self.settings.userdata_file.read_text() if self.settings.userdata_file else None
        if self.host_users is None or not vnfr_name or not userdata.takes_host_user(text):
            return None
        user = state.context.ems_user
        if not user:
            user = state.context.ems_user = new_user_name()
            await self._save_context(state)
        try:
            return await self.host_users.create(vnfr_hosts_pattern(vnfr_name), user=user)
        except ManagementError as exc:
            raise OperationError(f"cannot create the EMS broker user for {vnfr_name}: {exc}") from exc

    async def _pin_host_user(self, state: OperationState, hostnames: list[str], *, unpinned: bool = False) -> None:
        """The NFVO named the hosts: the user-data's broker user serves exactly those (``unpinned``: only
        if it was not narrowed yet)."""
        user = state.context.ems_user
        if self.host_users is None or not user:
            return
        try:
            pin = self.host_users.pin_unpinned if unpinned else self.host_users.pin
            await pin(user, [h for h in hostnames if h])
        except ManagementError as exc:
            raise OperationError(f"cannot narrow the EMS broker user {user}: {exc}") from exc

    async def _drop_host_user(self, state: OperationState) -> None:
        """The NFVO made no host with the user-data: its broker user goes."""
        user, state.context.ems_user = state.context.ems_user, None
        if self.host_users is not None and user:
            try:
                await self.host_users.delete(user)
            except ManagementError as exc:
                log.warning("event=ems_host_user_release_failed user=%s error=%r", user, str(exc))

    async def _release_host_users(self, gone: list[str], keep: list[str] | None = None) -> None:
        if self.host_users is None or not gone:
            return
        try:
            await self.host_users.release(gone, keep or [])
        except ManagementError as exc:   # the hosts are gone either way; say what was left behind
            log.warning("event=ems_host_user_release_failed hosts=%s error=%r", ",".join(gone), str(exc))

    def _userdata(self, msg: OrVnfmInstantiateMessage | OrVnfmScalingMessage, with_package: bool,
                  host_user: tuple[str, str] | None = None) -> str:
        boot = self.boot or ems_bootstrap(self.settings, msg.extension or {})
        if host_user is not None:
            boot = dataclasses.replace(boot, username=host_user[0], password=host_user[1], host_user=True)
        self._advertised = (boot.broker_ip, boot.broker_port)   # what the EMSs were told (for a diagnosis)
        text = self.settings.userdata_file.read_text() if self.settings.userdata_file else None
        extra = None
        if with_package and msg.vnfPackage is not None:
            for script in msg.vnfPackage.scripts or []:
                if script.name in ("user-data.sh", "userdata.sh"):
                    extra = script.payload.decode("utf-8", "replace")
        return userdata.render(boot, extra=extra, text=text)

    def _delivery(self, targets: list[VNFCInstance], package: Any) -> plans.Plan:
        if package is None:
            return plans.Plan()
        return plans.plan_delivery(targets, scripts=package.scripts, scripts_link=package.scriptsLink,
                                   scripts_path=self.settings.scripts_path)

    # -- INSTANTIATE ------------------------------------------------------------------------------
    async def _on_instantiate(self, msg: OrVnfmInstantiateMessage, state: OperationState) -> NfvMessage:
        if state.context.allocated is not None:
            vnfr = VirtualNetworkFunctionRecord.model_validate(state.context.allocated)
            # a worker that died between storing the allocation and narrowing its user: narrowed now
            await self._pin_host_user(state, [i.hostname or "" for i in vnfr.vnfc_instances()], unpinned=True)
        elif msg.vnfr is not None:
            # The NFVO's restart path (VnfmManager.restartVnfr: "so the allocate resources will be
            # skipped"): the VNFR and its VNFC instances exist; no GRANT_OPERATION, no ALLOCATE_RESOURCES.
            vnfr = msg.vnfr
        else:
            try:
                vnfr = build_vnfr(msg)
            except RecordError as exc:
                raise OperationError(f"INSTANTIATE refused: {exc}", msg.vnfr) from exc
            vnfr = await self._grant_and_allocate(msg, vnfr, state)
        try:
            targets = plans.all_targets(vnfr)
        except plans.PlanError as exc:
            raise OperationError(str(exc), vnfr) from exc
        await self._wait_for_ems(vnfr, [t.hostname or "" for t in targets])
        plan = self._delivery(targets, msg.vnfPackage).then(plans.plan_event(vnfr, "INSTANTIATE", targets))
        await self._run(vnfr, plan, state)
        return VnfmOrInstantiateMessage(action="INSTANTIATE", virtualNetworkFunctionRecord=vnfr)

    async def _grant_and_allocate(self, msg: OrVnfmInstantiateMessage, vnfr: VirtualNetworkFunctionRecord,
                                  state: OperationState) -> VirtualNetworkFunctionRecord:
        try:
            grant = await self.nfvo.request(VnfmOrGenericMessage(action="GRANT_OPERATION",
                                                                 virtualNetworkFunctionRecord=vnfr),
                                            correlation_id=f"{state.op_id}:grant")
        except NfvoError as exc:
            raise OperationError(str(exc), vnfr) from exc
        if isinstance(grant, OrVnfmErrorMessage):
            raise NfvoRefused(grant.message or "the NFVO refused the grant", grant.vnfr or vnfr)
        if not isinstance(grant, OrVnfmGrantLifecycleOperationMessage) or grant.virtualNetworkFunctionRecord is None:
            raise OperationError(f"the NFVO answered GRANT_OPERATION with {grant.action}", vnfr)
        if grant.grantAllowed is False:
            raise NfvoRefused(f"the NFVO did not grant the instantiation of {vnfr.name}",
                              grant.virtualNetworkFunctionRecord)
        vnfr = grant.virtualNetworkFunctionRecord
        asking = f"{state.op_id}:allocate"
        try:
            if await self.nfvo.asked(asking):   # by a worker before this one: its user-data went out, not ours
                allocated = await self.nfvo.collect("ALLOCATE_RESOURCES", asking)
            else:
                host_user = await self._host_user(vnfr.name, state)
                request = VnfmOrAllocateResourcesMessage(
                    action="ALLOCATE_RESOURCES", virtualNetworkFunctionRecord=vnfr,
                    vimInstances=grant.vduVim or {},
                    userdata=self._userdata(msg, with_package=True, host_user=host_user) or "none",
                    keyPairs=list(msg.keys or []))
                allocated = await self.nfvo.request(request, correlation_id=asking)
        except NfvoError as exc:
            await self._drop_host_user(state)
            raise OperationError(str(exc), vnfr) from exc
        if not isinstance(getattr(allocated, "vnfr", None), VirtualNetworkFunctionRecord):
            await self._drop_host_user(state)   # refused or unusable: no host will ever use it
        if isinstance(allocated, OrVnfmErrorMessage):
            raise NfvoRefused(allocated.message or "the NFVO could not allocate resources", allocated.vnfr or vnfr)
        result = getattr(allocated, "vnfr", None)
        if not isinstance(result, VirtualNetworkFunctionRecord):
            raise OperationError(f"the NFVO answered ALLOCATE_RESOURCES with {allocated.action} and no VNFR", vnfr)
        state.context.allocated = result.to_wire()
        await self._save_context(state)   # durable before any EMS command: a re-run never allocates again
        await self._pin_host_user(state, [i.hostname or "" for i in result.vnfc_instances()])
        return result

    # -- MODIFY / CONFIGURE ----------------------------------------------------------------------
    async def _on_modify(self, msg: OrVnfmGenericMessage, state: OperationState) -> NfvMessage:
        vnfr = self._require_vnfr(msg)
        targets = plans.all_targets(vnfr)
        plan = plans.plan_configure(vnfr, msg.vnfrd, targets, scripts_path=self.settings.scripts_path,
                                    save_dependency_file=self._ems_saves_dependency())
        await self._run(vnfr, plan, state)
        return VnfmOrGenericMessage(action="MODIFY", virtualNetworkFunctionRecord=vnfr)

    def _ems_saves_dependency(self) -> bool:
        """SAVE_VNFR_DEPENDENCY needs EMS >= 1.1 (compared numerically, unlike the reference)."""
        if not self.settings.ems_version:
            return True
        try:
            parts = [int(p) for p in self.settings.ems_version.split(".")[:2]]
        except ValueError:
            return True
        return tuple([*parts, 0])[:2] >= (1, 1)

    async def _on_configure(self, msg: OrVnfmGenericMessage, state: OperationState) -> NfvMessage:
        # The reference's configure() is a no-op: CONFIGURE scripts run through MODIFY.
        return VnfmOrGenericMessage(action="CONFIGURE", virtualNetworkFunctionRecord=self._require_vnfr(msg))

    # -- START / STOP -----------------------------------------------------------------------------
    async def _start_stop(self, msg: OrVnfmStartStopMessage, state: OperationState, event: str) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None:
            raise OperationError(f"{event} carries no virtualNetworkFunctionRecord")
        try:
            targets = ([plans.named_target(vnfr, msg.vnfcInstance)] if msg.vnfcInstance is not None
                       else plans.all_targets(vnfr))
        except plans.PlanError as exc:
            raise OperationError(str(exc), vnfr) from exc
        await self._run(vnfr, plans.plan_event(vnfr, event, targets), state)
        if msg.vnfcInstance is not None:
            for inst in targets:
                inst.state = "ACTIVE" if event == "START" else "INACTIVE"
            msg.vnfcInstance.state = targets[0].state
        if msg.vnfcInstance is None:       # no "vnfcInstance": null (Gson leaves null fields out)
            return VnfmOrStartStopMessage(action=event, virtualNetworkFunctionRecord=vnfr)
        return VnfmOrStartStopMessage(action=event, virtualNetworkFunctionRecord=vnfr,
                                      vnfcInstance=msg.vnfcInstance)

    async def _on_start(self, msg: OrVnfmStartStopMessage, state: OperationState) -> NfvMessage:
        return await self._start_stop(msg, state, "START")

    async def _on_stop(self, msg: OrVnfmStartStopMessage, state: OperationState) -> NfvMessage:
        return await self._start_stop(msg, state, "STOP")

    # -- RELEASE_RESOURCES / ERROR --------------------------------------------------------------------
    async def _on_release_resources(self, msg: OrVnfmGenericMessage, state: OperationState) -> NfvMessage:
        vnfr = self._require_vnfr(msg)
        targets = vnfr.vnfc_instances()
        if targets:
            await self._run(vnfr, plans.plan_event(vnfr, "TERMINATE", targets), state)
        hostnames = [t.hostname for t in targets if t.hostname]
        self.registrations.forget(hostnames)
        await self.store.forget_registrations(hostnames)
        await self._release_host_users(hostnames)
        if vnfr.id:
            await self.store.delete_vnfr(vnfr.id)
        return VnfmOrGenericMessage(action="RELEASE_RESOURCES", virtualNetworkFunctionRecord=vnfr)

    async def _on_error(self, msg: OrVnfmErrorMessage, state: OperationState) -> None:
        vnfr = msg.vnfr
        if vnfr is None or not vnfr.vnfc_instances():
            return None
        try:
            await self._run(vnfr, plans.plan_event(vnfr, "ERROR", vnfr.vnfc_instances()), state)
        except OperationError as exc:
            log.warning("event=error_scripts_failed vnfr=%s error=%r", vnfr.name, str(exc))
        return None

    # -- SCALE_OUT / SCALE_IN ---------------------------------------------------------------------
    async def _on_scale_out(self, msg: OrVnfmScalingMessage, state: OperationState) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None or msg.component is None:
            raise OperationError("SCALE_OUT needs virtualNetworkFunctionRecord and component", vnfr)
        # A re-run (redelivery, RESUME) uses what the first run stored: the NFVO's SCALING answer, the
        # VNFC instances from before it and the new one's id. A RESUME's VNFR already holds the new VNFC,
        # so ``before`` can't be taken from it.
        if state.context.scaled is not None:
            scaled = VirtualNetworkFunctionRecord.model_validate(state.context.scaled)
            before = set(state.context.scaled_before or [i.id for i in vnfr.vnfc_instances()])
        else:
            before = {i.id for i in vnfr.vnfc_instances()}
            asking = f"{state.op_id}:scaling"
            try:
                if await self.nfvo.asked(asking):   # by a worker before this one: its user-data went out
                    answer = await self.nfvo.collect("SCALING", asking)
                else:
                    host_user = await self._host_user(vnfr.name, state)
                    request = VnfmOrScalingMessage(
                        action="SCALING", virtualNetworkFunctionRecord=vnfr, vimInstance=msg.vimInstance,
                        userData=self._userdata(msg, with_package=False, host_user=host_user))
                    answer = await self.nfvo.request(request, correlation_id=asking)
            except NfvoError as exc:
                await self._drop_host_user(state)
                raise OperationError(str(exc), vnfr) from exc
            if vnfr_of(answer) is None or isinstance(answer, OrVnfmErrorMessage):
                await self._drop_host_user(state)
            if isinstance(answer, OrVnfmErrorMessage):
                raise NfvoRefused(answer.message or "the NFVO refused the scale-out", answer.vnfr or vnfr)
            got = vnfr_of(answer)
            if got is None:
                raise OperationError(f"the NFVO answered SCALING with {answer.action} and no VNFR", vnfr)
            scaled = got
        inst = outcomes.new_vnfc(scaled, before, msg.component.id, state.context.scaled_vnfc)
        if (context := outcomes.scale_out_context(state.context, scaled, before, inst)) is not None:
            state.context = context
            await self._save_context(state)
        if inst is None:
            raise OperationError("the NFVO's SCALING answer holds no new VNFC instance", scaled)
        await self._pin_host_user(state, [inst.hostname or ""])
        if (msg.mode or "").lower() == "standby":
            inst.state = "STANDBY"
        await self._wait_for_ems(scaled, [inst.hostname or ""])
        plan = self._delivery([inst], msg.vnfPackage).then(plans.plan_event(scaled, "INSTANTIATE", [inst]))
        if msg.dependency is not None:
            plan = plan.then(plans.plan_configure(scaled, msg.dependency, [inst],
                                                  scripts_path=self.settings.scripts_path,
                                                  save_dependency_file=self._ems_saves_dependency()))
        if (inst.state or "").upper() != "STANDBY":
            plan = plan.then(plans.plan_event(scaled, "START", [inst]))
        await self._run(scaled, plan, state)
        return VnfmOrScaledMessage(action="SCALED", virtualNetworkFunctionRecord=scaled, vnfcInstance=inst)

    async def _on_scale_in(self, msg: OrVnfmScalingMessage, state: OperationState) -> None:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None or msg.vnfcInstance is None:
            raise OperationError("SCALE_IN needs virtualNetworkFunctionRecord and vnfcInstance", vnfr)
        targets = [i for i in vnfr.vnfc_instances()
                   if i.id != msg.vnfcInstance.id or msg.vnfcInstance.id is None]
        if targets:
            await self._run(vnfr, plans.plan_event(vnfr, "SCALE_IN", targets, removing_env(msg.vnfcInstance)), state)
        if msg.vnfcInstance.hostname:
            await self._release_host_users([msg.vnfcInstance.hostname], [t.hostname or "" for t in targets])
        return None

    # -- HEAL ------------------------------------------------------------------------------------------
    async def _on_heal(self, msg: OrVnfmHealVNFRequestMessage, state: OperationState) -> NfvMessage:
        vnfr = msg.virtualNetworkFunctionRecord
        if vnfr is None or msg.vnfcInstance is None:
            raise OperationError("HEAL needs virtualNetworkFunctionRecord and vnfcInstance", vnfr)
        try:
            inst = plans.named_target(vnfr, msg.vnfcInstance)
        except plans.PlanError as exc:
            raise OperationError(str(exc), vnfr) from exc
        if msg.cause == "switchToStandby":
            if (inst.state or "").lower() != "standby":
                raise OperationError(f"VNFC {inst.hostname} is not in STANDBY (state {inst.state})", vnfr)
            if vnfr.scripts_of("START") is None:
                raise OperationError(f"VNFR {vnfr.name} has no START event: cannot switch {inst.hostname} "
                                     "from standby to active", vnfr)
            await self._run(vnfr, plans.plan_event(vnfr, "START", [inst]), state)
            inst.state = "ACTIVE"
            msg.vnfcInstance.state = "ACTIVE"
        else:
            await self._run(vnfr, plans.plan_event(vnfr, "HEAL", [inst], {"cause": msg.cause or ""}), state)
        # no ``cause`` in the answer (the Java VNFM leaves it null): the NFVO's HealTask returns early when
        # it is set and is not switchToStandby, and would skip the dependants' MODIFY
        return VnfmOrHealedMessage(action="HEAL", virtualNetworkFunctionRecord=vnfr, vnfcInstance=inst)

    # -- UPDATE / EXECUTE ---------------------------------------------------------------------------
    async def _not_resumable(self, state: OperationState) -> None:
        """Mark the operation as one RESUME skips (it continues the last resumable failure instead)."""
        if state.context.resumable:
            state.context.resumable = False
            await self._save_context(state)

    async def _on_update(self, msg: OrVnfmUpdateMessage, state: OperationState) -> NfvMessage:
        vnfr = self._require_vnfr(msg)
        targets = plans.all_targets(vnfr)
        if msg.script is None:
            await self._run(vnfr, plans.plan_event(vnfr, "UPDATE", targets), state)
        else:
            await self._not_resumable(state)
            await self._run(vnfr, plans.plan_script_update(targets, msg.script, self.settings.scripts_path), state)
        return VnfmOrGenericMessage(action="UPDATE", virtualNetworkFunctionRecord=vnfr)

    async def _on_execute(self, msg: OrVnfmExecuteScriptMessage, state: OperationState) -> NfvMessage:
        """The NFVO's ad-hoc script, on every VNFC: saved on each, then run on each where it was saved;
        one VNFC's failure does not stop the others. Every VNFC succeeded: an EXECUTE answer; else an
        ERROR answer (what the NFVO expects of a failed EXECUTE). Both carry ``scriptResults``, one entry
        per VNFC in VNFR order. Not resumable (as the reference)."""
        vnfr = self._require_vnfr(msg)
        if msg.script is None:
            raise OperationError("EXECUTE carries no script", vnfr)
        await self._not_resumable(state)
        try:
            targets = plans.all_targets(vnfr)
        except plans.PlanError as exc:
            raise OperationError(str(exc), vnfr) from exc
        script = Script(name=msg.script.name or "ob_runtime_script", payload=msg.script.payload)
        plan = plans.plan_adhoc_execute(targets, script, self.settings.scripts_path, base_env(vnfr))
        saves = {s.hostname: s for s in plan.steps() if not s.is_script}
        runs = [s for s in plan.steps() if s.is_script]
        ran: list[StepOutcome] = []
        with contextlib.suppress(OperationError):
            await self._run(vnfr, plans.Plan([st for st in plan.stages if not st.steps[0].is_script]), state,
                            collect=ran, mark_failed=False)
        unsaved = {o.step.step_id for o in ran if o.reply.status != 0}
        run_plan = plans.Plan([st for st in plan.stages if st.steps[0].is_script])
        with contextlib.suppress(OperationError):
            await self._run(vnfr, run_plan.without(s.step_id for s in runs if saves[s.hostname].step_id in unsaved),
                            state, collect=ran, mark_failed=False)
        latest = {o.step.step_id: o for o in ran}
        stored = ({r.step_id: r for r in await self.store.steps(state.op_id)}
                  if any(s.step_id not in latest for s in runs) else {})
        found = outcomes.execute_results(runs, saves, latest, stored)
        results = [r.to_wire() for r in found]
        if (failure := outcomes.execute_failure(script.name, vnfr.name, found)) is not None:
            raise ScriptsFailed(failure[0], vnfr, failure[1], results)
        return VnfmOrGenericMessage(action="EXECUTE", virtualNetworkFunctionRecord=vnfr,
                                    scriptResults=[ScriptResult.model_validate(r) for r in results])

    # -- LOG_REQUEST -----------------------------------------------------------------------------------
    async def _on_log_request(self, msg: OrVnfmLogMessage, state: OperationState) -> NfvMessage:
        results = await self.store.script_results(vnfr_name=msg.vnfrName, hostname=msg.hostname)
        out, err = outcomes.script_log(results)
        return VnfmOrLogMessage(action="LOG_REQUEST", outputLog=out, errorLog=err)

    # -- RESUME -----------------------------------------------------------------------------------------
    async def _on_resume(self, msg: OrVnfmGenericMessage, state: OperationState) -> NfvMessage | None:
        """Re-plan the failed operation from its original request and run what did not succeed.

        The steps of this RESUME are recorded under its own operation (so the failed run stays in the
        script logs); what is done is the union over the chain failed op ← earlier RESUMEs."""
        vnfr = self._require_vnfr(msg)
        if state.context.resumes:
            # a re-run of this RESUME (a takeover after a crash): continue the chain it started on,
            # which it may already have closed (marked DONE) before the crash
            failed = await self.store.get_operation(state.context.resumes)
        else:
            failed = await self.store.last_failed_operation(vnfr.id or "") if vnfr.id else None
        if failed is None:
            raise OperationError(f"Resume is allowed only for VNFRs with script errors: VNFR {vnfr.name} "
                                 "has no failed operation to resume", vnfr)
        chain = [failed]
        while (previous := chain[-1].context.resumes) and len(chain) < 100:
            op = await self.store.get_operation(previous)
            if op is None:
                break
            chain.append(op)
        done = set(state.done)
        for op in chain:
            done |= {s.step_id for s in await self.store.steps(op.id) if s.status == 0}
        original = parse_nfvo_message(failed.context.original_request or failed.request)
        # Continue with the records of the RESUME message (the NFVO's current view), the rest
        # (dependency, cause, package) as the original event had it.
        for attr in ("vnfr", "virtualNetworkFunctionRecord"):
            if attr in type(original).model_fields and getattr(original, attr, None) is not None:
                setattr(original, attr, vnfr)
        if msg.vnfrd is not None and isinstance(original, OrVnfmGenericMessage) and original.vnfrd is None:
            original.vnfrd = msg.vnfrd
        for inst in vnfr.vnfc_instances():
            if (inst.state or "").lower() == "error":
                inst.state = "ACTIVE"
        context = outcomes.resume_context(failed, state.context, original.to_wire(), original.action,
                                          isinstance(original, OrVnfmInstantiateMessage), vnfr)
        await self._save_context(state, context)
        log.info("event=resume vnfr=%s failed_op=%s action=%s done_steps=%d", vnfr.name, failed.id,
                 original.action, len(done))
        reply = await self.handle(original, OperationState(op_id=state.op_id, done=done, context=context))
        if original.action == "SCALE_OUT" and reply is not None:
            reply = await self._resumed_scale_out_answer(chain[0].id, vnfr_of(reply) or vnfr)
        for op in chain:
            await self.store.finish_operation(op.id, state="DONE", reply=op.reply, error=f"resumed by {state.op_id}")
        if reply is None or original.action in NO_ANSWER:
            # the resumed action has no answer message of its own; a RESUME always gets one (§5.3)
            resumed = vnfr_of(original) or vnfr
            reply = error_message(resumed, f"RESUME of {original.action} on VNFR {resumed.name}: its scripts "
                                           f"completed, but {original.action} has no answer message, so RESUME "
                                           "answers ERROR (as the reference does for events it does not map)")
        return reply

    async def _resumed_scale_out_answer(self, failed_op: str, vnfr: VirtualNetworkFunctionRecord) -> NfvMessage:
        """What a resumed SCALE_OUT answers: as the reference, the action of the lifecycle event that
        failed (INSTANTIATE, CONFIGURE → MODIFY, START), never SCALED (the NFVO has no task for a SCALED
        answer to RESUME, and the NSR would stay RESUMING). A failure before any script (delivery, EMS
        wait) resumes as INSTANTIATE."""
        events = [s.event for s in await self.store.steps(failed_op) if s.status != 0]
        action = RESUMED_ACTION.get(events[0] if events else "", "INSTANTIATE")
        if action == "INSTANTIATE":
            return VnfmOrInstantiateMessage(action=action, virtualNetworkFunctionRecord=vnfr)
        if action == "START":
            return VnfmOrStartStopMessage(action=action, virtualNetworkFunctionRecord=vnfr)
        return VnfmOrGenericMessage(action=action, virtualNetworkFunctionRecord=vnfr)

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _require_vnfr(msg: NfvMessage) -> VirtualNetworkFunctionRecord:
        vnfr = vnfr_of(msg)
        if vnfr is None:
            raise OperationError(f"{msg.action} carries no VNFR")
        return vnfr


def failure_reply(exc: OperationError | Exception, msg: NfvMessage | None) -> NfvMessage | None:
    """The ERROR answer of a failed operation; ``None`` (the answer ``null``) when there is no VNFR to
    put in it: the NFVO's ErrorTask fails on an ERROR without one, and the NSR would stay as it is."""
    vnfr = getattr(exc, "vnfr", None) or (vnfr_of(msg) if msg is not None else None)
    if vnfr is None:
        return None
    step = exc.step if isinstance(exc, OperationError) else None
    results = [ScriptResult.model_validate(r) for r in exc.results] if isinstance(exc, ScriptsFailed) else None
    return error_message(vnfr, str(exc), getattr(exc, "cause", None), failed_step=step, script_results=results)
