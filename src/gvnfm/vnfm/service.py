"""The VNFM service: consumes the NFVO's endpoint queue and the EMS registrations, runs operations
durably, answers the NFVO (how: docs/architecture.md, *Durability and workers*).

Invariants:
- an NFVO message is acknowledged only after its operation's outcome is committed and the reply sent;
  every command gets an answer (``null`` for those without an answer message);
- one operation per NFVO message (:func:`operation_key`): a redelivery finds it, never starts another;
- one process never runs an operation twice at once; across processes only the lease holder writes
  its outcome and context, so a worker that lost the lease never replies;
- the operation deadline counts from the operation's creation, across takeovers.
What a delivery does (answer, wait, run, give up) is decided by ``outcomes`` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gvnfm.catalogue import queues
from gvnfm.catalogue.messages import (
    NO_ANSWER,
    NULL_BODY,
    MessageError,
    NfvMessage,
    error_message,
    parse_nfvo_message,
    salvage_vnfr,
    vnfr_of,
)
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord
from gvnfm.catalogue.wire_json import loads_wire
from gvnfm.logs import bind_operation
from gvnfm.ops import metrics
from gvnfm.redact import body_summary
from gvnfm.store.api import DONE, FAILED, RUNNING, LeaseLost, Operation, Store
from gvnfm.transport import BrokerRefused, Delivery, Message, Subscription, Transport, TransportError
from gvnfm.vnfm import nfvo_client, outcomes
from gvnfm.vnfm.broker_users import BrokerUsers, ManagementError, open_host_users
from gvnfm.vnfm.ems_client import EmsClient
from gvnfm.vnfm.executor import PlanExecutor
from gvnfm.vnfm.nfvo_answers import NfvoAnswers
from gvnfm.vnfm.nfvo_client import NfvoClient
from gvnfm.vnfm.operations import (
    OperationError,
    Operations,
    OperationState,
    ProgressHook,
    broker_vhost,
    failure_reply,
)
from gvnfm.vnfm.queues import declare_own_queue
from gvnfm.vnfm.registrations import RegistrationBook
from gvnfm.vnfm.settings import VnfmSettings

log = logging.getLogger(__name__)

#: Unacknowledged registrations the broker may hand this worker at once: they are acknowledged only
#: once stored (in batches), so a small window throttles a storm to one batch per store round trip.
REGISTRATION_PREFETCH = 512
#: Seconds a burst of registrations gathers before its store write: the waiters of this worker are
#: woken at once, and the operations they unblock (allocation, finish) find SQLite's one writer free
#: instead of queued behind one registration transaction per arrival (docs/performance.md).
REGISTRATION_LINGER = 0.05

#: Largest NFVO message accepted (a VNF package with its scripts travels inside INSTANTIATE).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Opens a transport with the credentials the NFVO gave (None: keep the current one).
Reconnect = Callable[[str, str], Awaitable[Transport | None]]
#: Fields of a VNFR kept in the ERROR that replaces an answer the broker refused (the NFVO finds the
#: record by them; the rest, what made the answer too large, is dropped).
VNFR_IDENTITY = ("id", "hbVersion", "name", "type", "endpoint", "status", "parent_ns_id", "packageId",
                 "version", "vendor", "descriptor_reference", "deployment_flavour_key")
#: Messages whose failure count is remembered (oldest forgotten first).
FAILURE_MEMORY = 4096
#: How a ``null`` answer is stored as an operation's reply (``None`` there means "none yet").
NULL_REPLY: dict[str, Any] = {}


def reply_at_most_once(message: Message) -> bool:
    """:func:`gvnfm.vnfm.outcomes.reply_at_most_once` of a message."""
    return outcomes.reply_at_most_once(message.reply_to, message.correlation_id)


def operation_key(correlation_id: str | None, body: bytes) -> str:
    """The operation id of an NFVO message: ``<correlation id>:<body digest>`` (a redelivery is
    byte-identical; another message that reuses the correlation id is another operation). Without a
    correlation id, the prefix ``nocid:<body digest>:`` that the service completes."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    return f"{correlation_id}:{digest}" if correlation_id else f"nocid:{digest}:"


class VnfmService:
    def __init__(self, settings: VnfmSettings, *, transport: Transport, store: Store,
                 ems_transport: Transport | None = None, progress: ProgressHook | None = None,
                 worker_id: str | None = None, reconnect: Reconnect | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self.ems_transport = ems_transport or transport
        self.store = store
        self.worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.registrations = RegistrationBook(poll=store.registered_hostnames)
        self.limiter = asyncio.Semaphore(settings.max_inflight_commands)
        self.ems_client = EmsClient(self.ems_transport, timeout=settings.ems_command_timeout)
        self.executor = PlanExecutor(self.ems_client, concurrency=settings.concurrency,
                                     script_timeout=settings.script_timeout)
        self.nfvo_answers = NfvoAnswers(store, settings.endpoint, auto_delete=settings.endpoint_queue_auto_delete)
        nfvo = NfvoClient(transport, timeout=settings.nfvo_timeout, answers=self.nfvo_answers)
        self.operations = Operations(settings, nfvo=nfvo,
                                     executor=self.executor, registrations=self.registrations,
                                     store=store, limiter=self.limiter, progress=progress, worker=self.worker)
        self.credentials: dict[str, Any] | None = None
        self._bootstrap = transport
        self._reconnect = reconnect
        self._reg_pending: list[tuple[str, Delivery]] = []
        self._reg_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._alive_task: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        #: operation id -> the handler of this process working on it (at most one per operation)
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._stopping = asyncio.Event()
        self.host_users: BrokerUsers | None = None
        #: operation key of an NFVO message -> failed handlings of it in this process (poison guard)
        self._failures: OrderedDict[str, int] = OrderedDict()

    # -- queues ----------------------------------------------------------------------------------
    @property
    def register_queue(self) -> str:
        return queues.ems_register_queue(self.settings.endpoint)

    @property
    def registered_topic(self) -> str:
        return queues.ems_registered_key(self.settings.endpoint)

    async def _host_users_in_use(self) -> set[str]:
        """The host users the store's running operations name (this endpoint's workers, live or not)."""
        running = await self.store.list_operations(state=RUNNING, limit=1_000_000)
        return {op.context.ems_user for op in running if op.context.ems_user}

    async def start(self) -> None:
        s = self.settings
        await self._open_host_users()   # first: the reply queue is bound to the exchange from the start
        # this worker is live for the endpoint before it registers: a worker that stops meanwhile does
        # not unregister the endpoint under it
        await self.store.worker_alive(self.worker, s.endpoint, s.lease_seconds)
        self._alive_task = asyncio.create_task(self._keep_alive())
        if s.register_with_nfvo:
            self.credentials = await nfvo_client.register(
                self.transport, endpoint=s.endpoint, type_=s.type, description=s.description,
                tries=s.register_tries, pause=s.register_pause)
            await self._use_nfvo_credentials()
        # EMS registrations: the shared register queue, and a per-worker queue that every worker's
        # consumer re-publishes registrations to, so the worker that waits hears of it.
        # both queues as the reference declares them (durable, auto-delete; vnfm.rabbitmq.* to change)
        await declare_own_queue(self.ems_transport, self.register_queue, durable=s.endpoint_queue_durable,
                                auto_delete=s.endpoint_queue_auto_delete, vhost=broker_vhost(s.ems_broker_url()))
        self._subs.append(await self.ems_transport.consume(self.register_queue, self._on_registration,
                                                           prefetch=REGISTRATION_PREFETCH))
        own = queues.worker_inbox(s.endpoint, uuid.uuid4().hex[:12])
        await self.ems_transport.declare_queue(own, exclusive=True, auto_delete=True, bind=False)
        await self.ems_transport.bind(own, self.registered_topic)
        self._subs.append(await self.ems_transport.consume(own, self._on_registered_broadcast, prefetch=64))
        # the NFVO's answers to GRANT / ALLOCATE / SCALING: one durable queue for the endpoint's workers
        self._subs.append(await self.nfvo_answers.start(self.transport))
        # NFVO commands
        await declare_own_queue(self.transport, s.endpoint, durable=s.endpoint_queue_durable,
                                auto_delete=s.endpoint_queue_auto_delete, vhost=broker_vhost(s.broker))
        self._subs.append(await self.transport.consume(s.endpoint, self._on_nfvo_message, prefetch=s.consumers))
        if s.script_log_minutes > 0:
            self._prune_task = asyncio.create_task(self._prune_script_logs())
        log.info("event=vnfm_started endpoint=%s type=%s worker=%s", s.endpoint, s.type, self.worker)

    async def _open_host_users(self) -> None:
        """A broker user per EMS host when the broker's management API allows it (``broker_users``);
        otherwise the shared EMS credentials, as the reference (one warning names the risk). Host users
        a killed worker left unpinned are deleted (``BrokerUsers.sweep``)."""
        self.host_users = await open_host_users(self.settings)
        if self.host_users is not None:
            try:
                await self.host_users.sweep(self._host_users_in_use)
            except ManagementError as exc:
                log.warning("event=ems_host_users_sweep_failed error=%r", str(exc))
            self.operations.host_users = self.host_users
            self.ems_client.user_of = self.host_users.user_of
            if hasattr(self.ems_transport, "replies_via_exchange"):
                self.ems_transport.replies_via_exchange = True

    async def _use_nfvo_credentials(self) -> None:
        """The NFVO answers a registration with broker credentials of this VNFM's own; like the
        reference, all further NFVO traffic uses them. EMS traffic stays on the EMS credentials."""
        creds = self.credentials or {}
        user, password = creds.get("rabbitUsername"), creds.get("rabbitPassword")
        if self._reconnect is None or not user or password is None:
            return
        # The NFVO may answer before its broker user exists: a refused connection is retried after each
        # of ``nfvo_auth_retry_delays`` (the reference: 40, 80, 160 s), cancellable at once.
        delays = list(self.settings.nfvo_auth_retry_delays)
        while True:
            try:
                new = await self._reconnect(str(user), str(password))
                break
            except TransportError as exc:
                if not delays:
                    raise
                delay = delays.pop(0)
                log.warning("event=nfvo_credentials_refused user=%s retry_in=%gs retries_left=%d error=%r", user,
                            delay, len(delays), str(exc))
                await asyncio.sleep(delay)
        if new is None:
            return
        self.transport = new
        self.operations.nfvo.transport = new
        log.info("event=nfvo_credentials_in_use user=%s", user)

    async def prune_script_logs_once(self) -> int:
        """Delete script results older than the retention (``vnfm.ems.script.old`` minutes)."""
        cutoff = datetime.now(UTC) - timedelta(minutes=self.settings.script_log_minutes)
        removed = await self.store.prune_script_results(cutoff)
        if removed:
            log.info("event=script_logs_pruned removed=%d older_than=%s", removed, cutoff.isoformat())
        return removed

    async def _prune_script_logs(self) -> None:
        # as the reference's LogDispatcher: at start-up, then every 180 s
        while True:
            try:
                await self.prune_script_logs_once()
            except Exception:
                log.exception("event=script_log_prune_failed")
            await asyncio.sleep(self.settings.script_log_prune_interval)

    async def stop(self, grace: float = 30.0) -> None:
        self._stopping.set()
        if self._prune_task is not None:
            self._prune_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task      # it writes to the store, which is closed after this
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.cancel()
        self._subs.clear()
        if self._inflight:
            log.info("event=vnfm_stopping inflight=%d", len(self._inflight))
            _done, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
        if self._alive_task is not None:
            self._alive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alive_task
        await self._leave()
        if self.host_users is not None:
            await self.host_users.close()
        log.info("event=vnfm_stopped worker=%s", self.worker)

    async def _keep_alive(self) -> None:
        """Renew this worker's row (lease_seconds) every third of it."""
        while True:
            await asyncio.sleep(max(1.0, self.settings.lease_seconds / 3))
            try:
                await self.store.worker_alive(self.worker, self.settings.endpoint, self.settings.lease_seconds)
            except Exception:
                log.exception("event=worker_renew_failed worker=%s", self.worker)

    async def _leave(self) -> None:
        """Unregister from the NFVO only as the endpoint's last live worker: the NFVO's unregister deletes
        the endpoint, its credentials and its broker user, which every other worker uses."""
        s = self.settings
        try:
            others = await self.store.worker_leaving(self.worker, s.endpoint)
        except Exception as exc:
            log.warning("event=nfvo_unregister_skipped worker=%s reason=store_unreachable error=%r", self.worker,
                        str(exc))
            return
        if not s.register_with_nfvo or self.credentials is None:
            return                       # never registered (stopped during start-up): nothing to undo
        if others:
            log.info("event=nfvo_unregister_skipped worker=%s endpoint=%s live_workers=%d", self.worker, s.endpoint,
                     others)
            return
        await nfvo_client.unregister(self._bootstrap, endpoint=s.endpoint, type_=s.type,
                                     description=s.description, credentials=self.credentials)

    # -- EMS registrations -----------------------------------------------------------------------
    async def _on_registration(self, delivery: Delivery) -> None:
        try:
            data = loads_wire(delivery.message.body)
            hostname = data.get("hostname") if isinstance(data, dict) else None
            if not isinstance(hostname, str) or not hostname.strip():
                raise ValueError("no 'hostname'")
            hostname = hostname.strip()
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("event=bad_registration error=%r %s", str(exc), body_summary(delivery.message.body))
            await delivery.ack()
            return
        if self.host_users is not None and not await self._registration_allowed(delivery, hostname):
            await delivery.ack()
            return
        # Waiters in this worker learn it at once; the store (other workers, restarts) and the
        # broadcast follow in batches, and the message is acknowledged once it is stored.
        self.registrations.register(hostname)
        self.ems_client.host_registered(hostname)
        metrics.EMS_REGISTRATIONS.inc()
        log.info("event=ems_registered hostname=%s", hostname)
        self._reg_pending.append((hostname, delivery))
        if self._reg_task is None or self._reg_task.done():
            self._reg_task = asyncio.create_task(self._flush_registrations())

    async def _registration_allowed(self, delivery: Delivery, hostname: str) -> bool:
        assert self.host_users is not None
        user = delivery.message.user_id
        try:
            allowed = await self.host_users.may_register(user, hostname)
        except Exception as exc:   # the management API is down: not trusted, the EMS registers again later
            log.warning("event=registration_unchecked hostname=%s user_id=%s error=%r", hostname, user, str(exc))
            return False
        if not allowed:
            log.warning("event=registration_refused hostname=%s user_id=%s reason=not_the_host_user", hostname, user)
        return allowed

    async def _flush_registrations(self) -> None:
        await asyncio.sleep(REGISTRATION_LINGER)
        while self._reg_pending:
            batch, self._reg_pending = self._reg_pending, []
            hostnames = [h for h, _ in batch]
            try:
                await self.store.record_registrations(hostnames, self.settings.endpoint)
            except Exception:
                log.exception("event=registration_store_failed count=%d", len(batch))
                await asyncio.sleep(self.settings.redelivery_pause)   # given back at once, they would spin
                for _, delivery in batch:
                    await delivery.reject(requeue=True)
                continue
            with contextlib.suppress(TransportError):
                await self.ems_transport.publish(self.registered_topic, json.dumps(
                    {"hostnames": hostnames, "worker": self.worker}).encode())
            for _, delivery in batch:
                await delivery.ack()

    async def _on_registered_broadcast(self, delivery: Delivery) -> None:
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
            data = json.loads(delivery.message.body)
            # this worker's own copy: its commands in flight were re-sent when the registration came
            own = data.get("worker") == self.worker
            for hostname in data.get("hostnames") or [data.get("hostname")]:
                if isinstance(hostname, str):
                    self.registrations.register(hostname)
                    if not own:
                        self.ems_client.host_registered(hostname)
        await delivery.ack()

    # -- NFVO messages ---------------------------------------------------------------------------
    async def _on_nfvo_message(self, delivery: Delivery) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._process(delivery)
        except asyncio.CancelledError:
            raise                       # shutdown: unacknowledged, the broker hands it to another worker
        except Exception as exc:
            # the store or the broker failed under us: the outcome is not committed, so the message
            # must not be dropped; give it back after a pause (another worker, or this one, retries).
            # A message that keeps failing is answered with an ERROR and acknowledged: no poison loop.
            m = delivery.message
            key = operation_key(m.correlation_id, m.body)
            failures = self._failures.pop(key, 0) + 1
            log.exception("event=operation_interrupted correlation_id=%s failures=%d", m.correlation_id, failures)
            retry = outcomes.after_failure(failures, max_failures=self.settings.max_delivery_failures,
                                           pause=self.settings.redelivery_pause)
            if retry.give_up and await self._give_up(delivery, exc, failures):
                return
            self._failures[key] = failures
            while len(self._failures) > FAILURE_MEMORY:
                self._failures.popitem(last=False)
            await asyncio.sleep(retry.pause)
            with contextlib.suppress(Exception):
                await delivery.reject(requeue=True)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _give_up(self, delivery: Delivery, exc: Exception, failures: int) -> bool:
        """Answer a message that failed ``failures`` times with an ERROR saying why, and acknowledge it.
        False when even that cannot be sent (the broker is gone: the message stays unacknowledged)."""
        m = delivery.message
        try:
            msg: NfvMessage | None = parse_nfvo_message(m.body)
        except MessageError:
            msg = None
        action = msg.action if msg is not None else "the message"
        reply = failure_reply(OperationError(f"gvnfm could not handle {action} ({failures} attempts failed); last "
                                             f"error: {exc}"), msg)
        # null for what has no answer message, and for an ERROR without a VNFR (the NFVO's ErrorTask needs one)
        answer = None if msg is None or msg.action in NO_ANSWER or reply is None or vnfr_of(reply) is None else reply
        try:
            await self._reply(delivery, answer, msg.action if msg is not None else "ERROR")
        except TransportError as err:
            log.error("event=give_up_reply_failed correlation_id=%s error=%r", m.correlation_id, str(err))
            return False
        with contextlib.suppress(Exception):   # best effort: a later copy then finds the operation finished
            await self.store.finish_operation(await self._operation_id(delivery), state=FAILED,
                                              reply=answer.to_wire() if answer is not None else NULL_REPLY,
                                              error=str(exc), worker=self.worker)
        await delivery.ack()
        log.error("event=message_given_up correlation_id=%s action=%s failures=%d error=%r", m.correlation_id,
                  action, failures, str(exc))
        return True

    async def _reply(self, delivery: Delivery, reply: NfvMessage | None, action: str) -> None:
        """Answer the NFVO: to ``reply_to`` (the NFVO always sets it; ``None`` is the body ``null``), or
        without one, a message to the NFVO's queues (a ``null`` answer has nowhere to go then). An answer
        the broker refuses for good (over its size limit) is replaced by an ERROR that fits, carrying the
        VNFR's identity (``null`` without a VNFR): the NFVO is never left without an answer."""
        body = NULL_BODY if reply is None else reply.to_json().encode()
        try:
            await self._send_reply(delivery, body, reply, action)
        except BrokerRefused as exc:
            log.error("event=reply_refused correlation_id=%s action=%s bytes=%d error=%r",
                      delivery.message.correlation_id, getattr(reply, "action", None), len(body), str(exc))
            text = (f"gvnfm's answer to {action} ({getattr(reply, 'action', None)}, {len(body)} bytes) was refused "
                    f"by the broker: {exc}")
            vnfr = vnfr_of(reply) if reply is not None else None
            if vnfr is None:
                await self._send_reply(delivery, NULL_BODY, None, action)
                return
            identity = VirtualNetworkFunctionRecord.model_validate({k: v for k, v in vnfr.to_wire().items()
                                                                    if k in VNFR_IDENTITY})
            fallback = error_message(identity, text)
            try:
                await self._send_reply(delivery, fallback.to_json().encode(), fallback, action)
            except BrokerRefused:
                await self._send_reply(delivery, NULL_BODY, None, action)

    async def _send_reply(self, delivery: Delivery, body: bytes, reply: NfvMessage | None, action: str) -> None:
        if delivery.message.reply_to:
            await self.transport.reply(delivery.message, body)
        elif reply is not None:
            queue = queues.NFVO_REQUEST_QUEUE if action == "INSTANTIATE" else queues.NFVO_NOTICE_QUEUE
            await self.transport.publish(queue, body)
        metrics.REPLIES.labels("null" if reply is None else reply.action).inc()

    async def _process(self, delivery: Delivery) -> None:
        raw = delivery.message.body
        op_id = delivery.message.correlation_id   # for the log lines until the operation id is known
        if len(raw) > MAX_MESSAGE_BYTES:
            log.error("event=message_refused op=%s reason=too_large bytes=%d", op_id, len(raw))
            # not even read: answered null (an ERROR without a VNFR makes the NFVO's ErrorTask fail)
            await self._reply(delivery, None, "ERROR")
            await delivery.ack()
            return
        try:
            msg = parse_nfvo_message(raw)
        except MessageError as exc:
            log.error("event=message_refused op=%s error=%r %s", op_id, str(exc), body_summary(raw))
            # an ERROR answer when the message names its VNFR, else null (an ERROR without a VNFR makes the
            # NFVO's ErrorTask fail): the NFVO waits for an answer to every command
            vnfr = salvage_vnfr(raw)
            await self._reply(delivery, error_message(vnfr, f"gvnfm could not handle the message: {exc}")
                              if vnfr is not None else None, "ERROR")
            await delivery.ack()
            return
        op_id = await self._operation_id(delivery)
        # One run per operation in this process. A delivery of an operation that a handler of this
        # process is working on (the broker redelivered it after the connection dropped, or the NFVO
        # sent it twice) waits for that handler to end, then is answered as a duplicate.
        me = asyncio.current_task()
        while (running := self._running.get(op_id)) is not None and running is not me:
            log.info("event=operation_running_here op=%s action=%s redelivered=%s", op_id, msg.action,
                     delivery.message.redelivered)
            await asyncio.wait([running])
        if me is not None:
            self._running[op_id] = me
        try:
            await self._claim_and_run(delivery, msg, raw, op_id)
        finally:
            if me is not None and self._running.get(op_id) is me:
                del self._running[op_id]

    async def _operation_id(self, delivery: Delivery) -> str:
        m = delivery.message
        key = operation_key(m.correlation_id, m.body)
        if m.correlation_id:
            return key
        # No correlation id: each message is a request of its own (two identical LOG_REQUESTs both get
        # an answer), except a redelivered one: it continues, or is answered by, the latest operation
        # an identical id-less message started (its first delivery, in all likelihood).
        if m.redelivered:
            op = await self.store.latest_operation(key)
            if op is not None:
                return op.id
        return key + uuid.uuid4().hex

    async def _claim_and_run(self, delivery: Delivery, msg: NfvMessage, raw: bytes, op_id: str) -> None:
        vnfr = vnfr_of(msg)
        vnfr_name = getattr(vnfr, "name", None) or (msg.vnfd.name if getattr(msg, "vnfd", None) else None)  # type: ignore[attr-defined]
        request = json.loads(raw)
        # Claim the operation. Held by another worker: it may be alive (a duplicated message: wait
        # for it to finish) or dead (its lease runs out: take the operation over). The message is
        # not acknowledged meanwhile, so it is never lost.
        lost = False
        while True:
            op, owned = await self.store.claim_operation(
                op_id, action=msg.action, vnfr_id=getattr(vnfr, "id", None), vnfr_name=vnfr_name,
                request=request, worker=self.worker, lease_seconds=self.settings.lease_seconds)
            claimed = outcomes.claimed(op, owned)
            if claimed is outcomes.Claimed.FINISHED:
                if await self._answer_finished(delivery, msg, op, asked_before=lost):
                    return
            elif claimed is outcomes.Claimed.RUN:
                if await self._run_owned(delivery, msg, op, vnfr):
                    return
                # The lease was lost: the worker that took the operation over answers the message (the
                # broker gave it this one again); this delivery only answers what it leaves unanswered.
                lost = True
                continue
            else:
                log.info("event=operation_held_elsewhere op=%s action=%s holder=%s", op_id, msg.action, op.worker)
            if self._stopping.is_set():
                await delivery.reject(requeue=True)
                return
            await asyncio.sleep(min(1.0, self.settings.lease_seconds / 3))

    async def _answer_finished(self, delivery: Delivery, msg: NfvMessage, op: Operation, *,
                               asked_before: bool = False) -> bool:
        """A message of a finished operation: send the stored reply when it was not marked sent, or when
        this is a new copy (not redelivered) that asks for an answer. False: wait and look again."""
        m = delivery.message
        seen = outcomes.Delivered(reply_to=m.reply_to, correlation_id=m.correlation_id, redelivered=m.redelivered,
                                  asked_before=asked_before)
        verdict = outcomes.verdict(op, seen, datetime.now(UTC), worker=self.worker,
                                   lease_seconds=self.settings.lease_seconds)
        if verdict.answer is outcomes.Answer.DUPLICATE:
            log.info("event=duplicate_finished op=%s action=%s redelivered=%s", op.id, msg.action, m.redelivered)
            await delivery.ack()
            return True
        if verdict.answer is outcomes.Answer.WAIT:
            log.info("event=reply_pending_elsewhere op=%s holder=%s", op.id, op.worker)
            return False
        assert op.reply is not None   # (a verdict to send is one with a stored reply)
        if verdict.mark_before:
            await self.store.mark_replied(op.id)
        await self._reply(delivery, parse_reply(op.reply), msg.action)
        if verdict.mark_after:
            await self.store.mark_replied(op.id)
        log.info("event=duplicate_answered op=%s action=%s redelivered=%s replied_before=%s", op.id, msg.action,
                 m.redelivered, op.replied)
        await delivery.ack()
        return True

    async def _run_owned(self, delivery: Delivery, msg: NfvMessage, op: Operation, vnfr: Any) -> bool:
        """Run an operation this worker holds. False: the lease was lost (nothing replied, the message
        is not settled); True: the outcome is stored, sent and the message acknowledged."""
        op_id = op.id
        steps = [] if op.created_by_claim else await self.store.steps(op_id)   # a new one has none
        state = OperationState(op_id=op_id, done={s.step_id for s in steps if s.status == 0},
                               context=op.context.model_copy(deep=True))
        remaining = self.settings.operation_timeout - (datetime.now(UTC) - op.created_at).total_seconds()
        log.info("event=operation_start op=%s action=%s vnfr=%s resumed_steps=%d redelivered=%s remaining=%.1fs",
                 op_id, msg.action, getattr(vnfr, "name", None) or op.vnfr_name, len(state.done),
                 delivery.message.redelivered, remaining)
        lost = asyncio.Event()
        bind_operation(op_id, getattr(vnfr, "name", None) or op.vnfr_name, msg.action)  # this handler's task only
        started = time.monotonic()
        run = asyncio.create_task(self._handle(msg, state, op, remaining))
        lease = asyncio.create_task(self._keep_lease(op_id, run, lost))
        try:
            try:
                reply = await run
                final, error = DONE, None
            except LeaseLost as exc:
                log.warning("event=lease_lost op=%s action=%s worker=%s error=%r; local run stopped, no reply",
                            op_id, msg.action, self.worker, str(exc))
                return False
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if not lost.is_set() or (me is not None and me.cancelling()):
                    raise
                return False   # stopped by _keep_lease (logged there)
            except OperationError as exc:
                log.error("event=operation_failed op=%s action=%s error=%r", op_id, msg.action, str(exc))
                reply = failure_reply(exc, msg)
                final, error = FAILED, str(exc)
            except Exception as exc:  # a bug must still answer the NFVO
                log.exception("event=operation_crashed op=%s action=%s", op_id, msg.action)
                reply = failure_reply(OperationError(f"internal error in gvnfm: {exc!r}"), msg)
                final, error = FAILED, repr(exc)
            if msg.action in NO_ANSWER and final == DONE:
                reply = None
        finally:
            lease.cancel()
            if not run.done():
                run.cancel()
        result_vnfr = getattr(reply, "virtualNetworkFunctionRecord", None) if reply is not None else None
        vnfr = result_vnfr or vnfr
        keep_vnfr = outcomes.keeps_vnfr(vnfr, final, msg.action)
        try:
            await self.store.finish_operation(
                op_id, state=final, reply=reply.to_wire() if reply else NULL_REPLY, error=error,
                vnfr_id=getattr(vnfr, "id", None), vnfr_name=getattr(vnfr, "name", None), worker=self.worker,
                save_vnfr=vnfr.to_wire() if keep_vnfr else None)
        except LeaseLost as exc:
            log.warning("event=lease_lost op=%s action=%s worker=%s error=%r; outcome %s dropped, no reply",
                        op_id, msg.action, self.worker, str(exc), final)
            return False
        early = reply_at_most_once(delivery.message)
        if early:
            await self.store.mark_replied(op_id)
        await self._reply(delivery, reply, msg.action)
        if not early:
            await self.store.mark_replied(op_id)
        await delivery.ack()
        metrics.OPERATIONS.labels(msg.action, final).inc()
        metrics.OPERATION_SECONDS.labels(msg.action).observe(time.monotonic() - started)
        log.info("event=operation_end op=%s action=%s state=%s", op_id, msg.action, final)
        return True

    async def _handle(self, msg: NfvMessage, state: OperationState, op: Operation,
                      remaining: float) -> NfvMessage | None:
        """The handler under the operation deadline, counted from the operation's creation: a run
        that takes an operation over gets what is left of it, not a fresh deadline."""
        def exceeded() -> OperationError:
            return OperationError(f"{msg.action} exceeded the operation deadline of "
                                  f"{self.settings.operation_timeout:g} s (started {op.created_at:%Y-%m-%dT%H:%M:%SZ})",
                                  vnfr_of(msg) or _allocated(state))

        if remaining <= 0:
            raise exceeded()
        timer = asyncio.timeout(remaining)
        try:
            async with timer:
                return await self.operations.handle(msg, state)
        except TimeoutError as exc:
            if not timer.expired():
                raise
            raise exceeded() from exc

    async def _keep_lease(self, op_id: str, run: asyncio.Task[Any], lost: asyncio.Event) -> None:
        """Renew the lease while ``run`` works; when the store says another worker holds it now (or
        the operation is no longer RUNNING), stop ``run``: that worker answers the NFVO."""
        interval = max(1.0, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self.store.renew_lease(op_id, self.worker, self.settings.lease_seconds)
            except Exception:
                log.exception("event=lease_renew_failed op=%s", op_id)
                continue
            if not held:
                log.warning("event=lease_lost op=%s worker=%s; local run stopped, no reply", op_id, self.worker)
                lost.set()
                run.cancel()
                return


def _allocated(state: OperationState) -> VirtualNetworkFunctionRecord | None:
    """The VNFR the NFVO allocated for an INSTANTIATE that has not finished (the ERROR answer's VNFR)."""
    data = state.context.allocated
    return VirtualNetworkFunctionRecord.model_validate(data) if data is not None else None


def parse_reply(data: dict[str, Any]) -> NfvMessage | None:
    """A stored reply as a message (``None``: the answer ``null``)."""
    from gvnfm.catalogue.messages import parse_vnfm_message

    return None if data == NULL_REPLY else parse_vnfm_message(data)
