"""The local NFVO's endpoint on the wire: the three queues an NFVO consumes (protocol reference §1-§5).

- ``nfvo.manager.handling``: VNFM registration (RPC) and unregistration (``registry.VnfmRegistry``);
- ``vnfm.nfvo.actions.reply``: GRANT_OPERATION, ALLOCATE_RESOURCES and SCALING requests (RPC), answered by
  ``grants.ResourceRequests``; a message there without a reply address is a notice;
- ``vnfm.nfvo.actions``: results a VNFM sends without a request (e.g. ERROR notices).

Invariants: a request with a correlation id is answered once (the answer is cached, ``answer_cache``
entries): a VNFM that repeats it (after a crash) gets the same answer again and no second set of hosts,
and a repeat while the first is still being answered waits for that answer. Every request gets an answer,
an ERROR one when it cannot be handled (a bug included). Every delivery is acknowledged. Notices are parsed
here and handed to ``on_notice``; unusable ones are logged and dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable

from gvnfm.catalogue.messages import (
    MessageError,
    NfvMessage,
    VnfmOrAllocateResourcesMessage,
    VnfmOrGenericMessage,
    VnfmOrScalingMessage,
    parse_vnfm_message,
    vnfr_of,
)
from gvnfm.catalogue.queues import NFVO_NOTICE_QUEUE, NFVO_REGISTRATION_QUEUE, NFVO_REQUEST_QUEUE
from gvnfm.orchestrator import outgoing
from gvnfm.orchestrator.grants import ResourceRequests
from gvnfm.orchestrator.registry import VnfmRegistry
from gvnfm.transport import Delivery, Subscription, Transport, TransportError

log = logging.getLogger(__name__)

#: Largest message accepted from a VNFM.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Requests answered through ``vnfm.nfvo.actions.reply``.
REQUESTS = ("GRANT_OPERATION", "ALLOCATE_RESOURCES", "SCALING")

#: called with every usable notice of a VNFM
OnNotice = Callable[[NfvMessage], None]


class NfvoEndpoint:
    def __init__(self, transport: Transport, registry: VnfmRegistry, requests: ResourceRequests,
                 on_notice: OnNotice, *, queue_prefix: str = "", answer_cache: int = 1024) -> None:
        """``queue_prefix`` prefixes the three NFVO queue names (only for tests sharing one broker)."""
        self.transport = transport
        self.registry = registry
        self.requests = requests
        self.on_notice = on_notice
        self.registration_queue = queue_prefix + NFVO_REGISTRATION_QUEUE
        self.sync_queue = queue_prefix + NFVO_REQUEST_QUEUE
        self.async_queue = queue_prefix + NFVO_NOTICE_QUEUE
        self._subs: list[Subscription] = []
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._answer_cache = answer_cache
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    async def start(self) -> None:
        for queue in (self.registration_queue, self.sync_queue, self.async_queue):
            await self.transport.declare_queue(queue, durable=True, auto_delete=True)
        self._subs.append(await self.transport.consume(self.registration_queue, self._on_registration, prefetch=16))
        self._subs.append(await self.transport.consume(self.sync_queue, self._on_request, prefetch=32))
        self._subs.append(await self.transport.consume(self.async_queue, self._on_notice, prefetch=32))

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.cancel()
            except Exception as exc:
                log.warning("event=nfvo_unsubscribe_failed error=%r", str(exc))
        self._subs.clear()

    # == registration =============================================================================
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
            self._notice(msg.body)
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
                                             f"{NFVO_REQUEST_QUEUE} (expected one of {', '.join(REQUESTS)})")

    # == notices from VNFMs ========================================================================
    async def _on_notice(self, delivery: Delivery) -> None:
        try:
            self._notice(delivery.message.body)
        except Exception:
            log.exception("event=notice_crashed")
        await delivery.ack()

    def _notice(self, body: bytes) -> None:
        try:
            msg = parse_vnfm_message(body)
        except MessageError as exc:
            log.error("event=notice_refused error=%r body=%r", str(exc), body[:300])
            return
        self.on_notice(msg)
