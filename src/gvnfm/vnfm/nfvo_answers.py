"""Requests to the NFVO whose answers survive the worker that asked.

GRANT_OPERATION, ALLOCATE_RESOURCES and SCALING go to ``vnfm.nfvo.actions.reply`` with ``reply_to`` =
a durable queue shared by every worker of the endpoint (``gvnfm.<endpoint>.nfvo-answers``) and a
correlation id derived from the operation and the step (``<operation id>:grant``...). The Java NFVO
answers on the default exchange to ``reply_to`` with the request's correlation id.

Invariants:

- a request is recorded in the store before it is published; a worker that finds it recorded (it
  took the operation over from a worker that died while the NFVO was answering) does not ask again:
  it waits for the answer, counting the deadline from the first asking;
- whichever worker consumes an answer stores it, and acknowledges it only once stored: an answer is
  never lost with a worker; the waiting worker hears of it at once when it consumed it itself, and
  from the store otherwise.

A worker killed between recording a request and publishing it leaves a request that never gets an
answer: the worker that takes over fails it at the deadline (never asking twice is the point: an
ALLOCATE_RESOURCES asked twice allocates twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gvnfm.catalogue.queues import nfvo_answers_queue
from gvnfm.store.api import NfvoRequest, Store
from gvnfm.transport import Delivery, RpcTimeout, Subscription, Transport

log = logging.getLogger(__name__)

#: How often a waiter looks in the store for an answer another worker consumed (it doubles up to this).
POLL_MAX = 1.0


class NfvoAnswers:
    """The shared answer queue of one endpoint's workers, and the waiting for answers."""

    def __init__(self, store: Store, endpoint: str, *, auto_delete: bool = False) -> None:
        self.store = store
        self.queue = nfvo_answers_queue(endpoint)
        self.auto_delete = auto_delete   # as the endpoint queue: the answers live as long as the requests
        self._waiters: dict[str, asyncio.Future[bytes]] = {}

    async def start(self, transport: Transport) -> Subscription:
        await transport.declare_queue(self.queue, durable=True, auto_delete=self.auto_delete, bind=False)
        return await transport.consume(self.queue, self._on_answer, prefetch=64)

    async def _on_answer(self, delivery: Delivery) -> None:
        cid = delivery.message.correlation_id
        if not cid:
            log.warning("event=nfvo_answer_without_correlation_id body=%r", delivery.message.body[:200])
            await delivery.ack()
            return
        await self.store.record_nfvo_answer(cid, delivery.message.body)   # raises: not acked, redelivered
        await delivery.ack()
        fut = self._waiters.get(cid)
        if fut is not None and not fut.done():
            fut.set_result(delivery.message.body)
        log.info("event=nfvo_answer_received correlation_id=%s local_waiter=%s", cid, fut is not None)

    async def ask(self, transport: Transport, routing_key: str, body: bytes, *, action: str, correlation_id: str,
                  timeout: float) -> bytes:
        """The NFVO's answer to the request ``correlation_id``: stored already, or awaited after
        publishing the request (only if no worker asked it before). :class:`RpcTimeout` when no answer
        came within ``timeout`` seconds of the first asking."""
        async def publish() -> None:
            await transport.publish(routing_key, body, reply_to=self.queue, correlation_id=correlation_id)

        return await self._answer(correlation_id, action, timeout, publish)

    async def asked(self, correlation_id: str) -> bool:
        """Whether a worker (this one or one before it) recorded the request ``correlation_id``: it may
        have gone out, so it is never asked again; :meth:`collect` gets its answer."""
        return await self.store.nfvo_request(correlation_id) is not None

    async def collect(self, correlation_id: str, *, action: str, timeout: float) -> bytes:
        """The answer to the request ``correlation_id`` that an earlier worker asked (:meth:`asked`),
        awaited without asking again; :class:`RpcTimeout` also when the request is not recorded at all."""
        return await self._answer(correlation_id, action, timeout, None)

    async def _answer(self, correlation_id: str, action: str, timeout: float,
                      publish: Callable[[], Awaitable[None]] | None) -> bytes:
        """The stored answer, or the wait for it (the deadline counted from the first asking); with
        ``publish`` the request is recorded first and published if this call recorded it."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[correlation_id] = fut
        try:
            if publish is not None:
                record: NfvoRequest | None = await self.store.record_nfvo_request(correlation_id, action)
            else:
                record = await self.store.nfvo_request(correlation_id)
            if record is None:
                raise RpcTimeout(f"{correlation_id} was never asked")
            if record.answer is not None:
                log.info("event=nfvo_answer_collected correlation_id=%s action=%s", correlation_id, action)
                return record.answer
            age = 0.0
            if record.created and publish is not None:
                await publish()
            else:
                age = max(0.0, (datetime.now(UTC) - record.asked_at).total_seconds())
                log.info("event=nfvo_answer_awaited correlation_id=%s action=%s asked_ago=%.1fs (not asking again)",
                         correlation_id, action, age)
            return await self._wait(fut, correlation_id, max(0.0, timeout - age))
        finally:
            if self._waiters.get(correlation_id) is fut:
                del self._waiters[correlation_id]

    async def _wait(self, fut: asyncio.Future[bytes], correlation_id: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcTimeout(f"no answer to {correlation_id}")
            done, _ = await asyncio.wait({fut}, timeout=min(pause, remaining))
            if done:
                return fut.result()
            record = await self.store.nfvo_request(correlation_id)
            if record is not None and record.answer is not None:
                return record.answer
            pause = min(pause * 2, POLL_MAX)
