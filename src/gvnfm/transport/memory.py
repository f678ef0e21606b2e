"""An in-process broker with RabbitMQ's semantics, for the embedded default and unit tests.

Queues, a topic exchange with bindings, the default exchange, per-consumer prefetch, manual
acknowledgement, redelivery of unacknowledged messages when a connection closes, auto-delete and
exclusive queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import uuid
from collections import deque
from typing import Any, ClassVar

from gvnfm.transport.base import (
    DEFAULT_EXCHANGE,
    BrokerRefused,
    Delivery,
    Handler,
    Message,
    Restored,
    RpcTimeout,
    Subscription,
    Transport,
    TransportError,
)
from gvnfm.transport.lifecycle import ReplyWaiters, run_handler


def _topic_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:[^.]*(?:\.[^.]*)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    return re.compile(r"\.".join(parts).replace(r"\.(?:[^.]*(?:\.[^.]*)*)?", r"(?:\.[^.]*)*") + r"\Z")


class _Consumer:
    def __init__(self, queue: _Queue, conn: InMemoryTransport, handler: Handler, prefetch: int) -> None:
        self.queue = queue
        self.conn = conn
        self.handler = handler
        self.prefetch = prefetch
        self.unacked = 0
        self.active = True
        self.tag = next(_tags)

    def has_capacity(self) -> bool:
        return self.active and (self.prefetch == 0 or self.unacked < self.prefetch)


_tags = itertools.count(1)


class _Queue:
    def __init__(self, name: str, *, durable: bool, auto_delete: bool, owner: InMemoryTransport | None) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.owner = owner
        self.messages: deque[Message] = deque()
        self.consumers: list[_Consumer] = []
        self.had_consumer = False
        self._rr = 0


class _MemoryDelivery(Delivery):
    def __init__(self, broker: InMemoryBroker, queue: _Queue, consumer: _Consumer, message: Message) -> None:
        self.message = message
        self._broker = broker
        self._queue = queue
        self._consumer = consumer
        self._settled = False

    async def ack(self) -> None:
        self._settle(requeue=False)

    async def reject(self, requeue: bool = False) -> None:
        self._settle(requeue=requeue)

    def _settle(self, *, requeue: bool) -> None:
        if self._settled:
            return
        self._settled = True
        self._consumer.conn._unacked.discard(self)
        self._consumer.unacked -= 1
        if requeue:
            self._broker._requeue(self._queue, self.message)
        self._broker._dispatch(self._queue)

    def _lost(self) -> None:
        """The connection closed with this message unsettled: redeliver it."""
        if not self._settled:
            self._settled = True
            self._consumer.unacked -= 1
            self._broker._requeue(self._queue, self.message)


class InMemoryBroker:
    """One broker per name per process; every InMemoryTransport on it sees the same queues."""

    _instances: ClassVar[dict[str, InMemoryBroker]] = {}

    def __init__(self, max_message_bytes: int = 128 * 1024 * 1024) -> None:
        self.queues: dict[str, _Queue] = {}
        self.bindings: dict[str, list[tuple[str, re.Pattern[str], str]]] = {}
        self.max_message_bytes = max_message_bytes
        self.published = 0

    @classmethod
    def named(cls, name: str) -> InMemoryBroker:
        if name not in cls._instances:
            cls._instances[name] = cls()
        return cls._instances[name]

    @classmethod
    def reset(cls, name: str | None = None) -> None:
        if name is None:
            cls._instances.clear()
        else:
            cls._instances.pop(name, None)

    # -- routing ----------------------------------------------------------------------------
    def route(self, exchange: str, routing_key: str, message: Message) -> int:
        if len(routing_key.encode()) > 255:   # an AMQP short string, as RabbitMQ's client refuses it
            raise BrokerRefused(f"routing key of {len(routing_key.encode())} bytes is longer than 255 bytes")
        if len(message.body) > self.max_message_bytes:
            raise BrokerRefused(f"message of {len(message.body)} bytes exceeds the broker limit")
        self.published += 1
        targets: list[str] = []
        if exchange == "":
            if routing_key in self.queues:
                targets.append(routing_key)
        else:
            for _pattern, regex, queue in self.bindings.get(exchange, []):
                if regex.match(routing_key) and queue not in targets:
                    targets.append(queue)
        for name in targets:
            q = self.queues.get(name)
            if q is None:
                continue
            copy = Message(body=message.body, routing_key=routing_key, reply_to=message.reply_to,
                           correlation_id=message.correlation_id, content_type=message.content_type,
                           headers=dict(message.headers), user_id=message.user_id)
            q.messages.append(copy)
            self._dispatch(q)
        return len(targets)

    def _requeue(self, queue: _Queue, message: Message) -> None:
        if queue.name not in self.queues:
            return
        # A fresh copy: the message object the first consumer holds keeps redelivered=False.
        queue.messages.appendleft(dataclasses.replace(message, redelivered=True, headers=dict(message.headers)))

    def _dispatch(self, queue: _Queue) -> None:
        while queue.messages:
            live = [c for c in queue.consumers if c.has_capacity()]
            if not live:
                return
            consumer = live[queue._rr % len(live)]
            queue._rr += 1
            message = queue.messages.popleft()
            consumer.unacked += 1
            delivery = _MemoryDelivery(self, queue, consumer, message)
            consumer.conn._unacked.add(delivery)
            consumer.conn._spawn(run_handler(queue.name, consumer.handler, delivery))

    def _remove_consumer(self, consumer: _Consumer) -> None:
        consumer.active = False
        q = consumer.queue
        if consumer in q.consumers:
            q.consumers.remove(consumer)
        if q.auto_delete and q.had_consumer and not q.consumers:
            self._delete_queue(q.name)

    def _delete_queue(self, name: str) -> None:
        self.queues.pop(name, None)
        for bindings in self.bindings.values():
            bindings[:] = [b for b in bindings if b[2] != name]


class _MemorySubscription(Subscription):
    def __init__(self, broker: InMemoryBroker, consumer: _Consumer) -> None:
        self._broker = broker
        self._consumer = consumer

    async def cancel(self) -> None:
        self._broker._remove_consumer(self._consumer)
        self._consumer.conn._consumers.discard(self._consumer)


class InMemoryTransport(Transport):
    def __init__(self, broker: InMemoryBroker | None = None, *, exchange: str = DEFAULT_EXCHANGE) -> None:
        self.broker = broker or InMemoryBroker()
        self.exchange = exchange
        self._connected = False
        self._consumers: set[_Consumer] = set()
        self._unacked: set[_MemoryDelivery] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply_queue: str | None = None
        self._pending = ReplyWaiters()
        self._owned: list[str] = []

    def _check(self) -> None:
        if not self._connected:
            raise TransportError("transport is not connected")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self) -> None:
        self._connected = True

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for consumer in list(self._consumers):
            self.broker._remove_consumer(consumer)
        self._consumers.clear()
        for delivery in list(self._unacked):
            delivery._lost()
        self._unacked.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for name in self._owned:
            self.broker._delete_queue(name)
        for q in list(self.broker.queues.values()):
            if q.messages:
                self.broker._dispatch(q)
        self._pending.fail_all(TransportError("connection closed"))

    async def declare_queue(self, name: str, *, durable: bool = False, auto_delete: bool = False,
                            exclusive: bool = False, bind: bool = True) -> None:
        self._check()
        if name not in self.broker.queues:
            self.broker.queues[name] = _Queue(name, durable=durable, auto_delete=auto_delete,
                                              owner=self if exclusive else None)
            if exclusive:
                self._owned.append(name)
        if bind:
            await self.bind(name, name)

    async def bind(self, queue: str, routing_key: str) -> None:
        self._check()
        if queue not in self.broker.queues:
            raise TransportError(f"NOT_FOUND - no queue '{queue}'")
        bindings = self.broker.bindings.setdefault(self.exchange, [])
        if not any(b[0] == routing_key and b[2] == queue for b in bindings):
            bindings.append((routing_key, _topic_regex(routing_key), queue))

    async def publish(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                      reply_to: str | None = None, correlation_id: str | None = None,
                      headers: dict[str, Any] | None = None, user_id: str | None = None) -> None:
        self._check()
        self.broker.route(self.exchange if exchange is None else exchange, routing_key,
                          Message(body=body, routing_key=routing_key, reply_to=reply_to,
                                  correlation_id=correlation_id, headers=headers or {}, user_id=user_id))

    async def publish_routed(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                             user_id: str | None = None) -> bool:
        self._check()
        return self.broker.route(self.exchange if exchange is None else exchange, routing_key,
                                 Message(body=body, routing_key=routing_key, user_id=user_id)) > 0

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 0,
                      on_restored: Restored | None = None) -> Subscription:
        self._check()
        q = self.broker.queues.get(queue)
        if q is None:
            raise TransportError(f"NOT_FOUND - no queue '{queue}'")
        consumer = _Consumer(q, self, handler, prefetch)
        q.consumers.append(consumer)
        q.had_consumer = True
        self._consumers.add(consumer)
        self.broker._dispatch(q)
        return _MemorySubscription(self.broker, consumer)

    async def _ensure_reply_queue(self) -> str:
        if self._reply_queue is None:
            name = f"amq.gen-{uuid.uuid4().hex}"
            await self.declare_queue(name, exclusive=True, auto_delete=True, bind=False)

            async def on_reply(delivery: Delivery) -> None:
                await delivery.ack()
                self._pending.resolve(delivery.message.correlation_id, delivery.message.body)

            await self.consume(name, on_reply)
            self._reply_queue = name
        return self._reply_queue

    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None,
                  exchange: str | None = None, correlation_id: str | None = None,
                  expect_user: str | None = None) -> bytes:   # (no host users on the in-memory broker)
        reply_to = await self._ensure_reply_queue()
        cid = correlation_id or uuid.uuid4().hex
        fut = self._pending.wait(cid)
        try:
            await self.publish(routing_key, body, exchange=exchange, reply_to=reply_to, correlation_id=cid)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s") from exc
        finally:
            self._pending.forget(cid, fut)
