"""What the broker transports (``transport.amqp``, ``transport.stomp``) share of a connection's life;
the broker's wire stays in each driver.

- :class:`ReconnectingTransport`: ``connect()`` retries with back-off until ``connect_timeout`` (a
  :class:`ConnectRefused` ends it at once); a lost connection is re-opened by a background loop,
  forever, with capped exponential back-off (``reconnect_initial`` doubling up to ``reconnect_max``,
  from ``reconnect_initial`` again after each success), then the ``on_reconnect`` callbacks run, in
  order, a failing one logged and skipped. ``close()`` stops that loop, deactivates the consumers,
  cancels the handlers in flight (5 s at most), fails the RPCs waiting with ``TransportError("connection
  closed")``, then the driver closes its connection and everything registered is forgotten. Operations
  wait for a reconnection at most ``connect_timeout`` (:meth:`ReconnectingTransport._wait_ready`).
- The registry of what is re-made on a new connection: queues declared (``_queues``), consumers
  (``_consumers``); a consumer cancelled as the last one of an auto-delete queue takes the queue out
  of it (the broker deleted it).
- :class:`ReplyWaiters`: RPCs waiting, by correlation id; a reply answers every waiter of its id.
  :meth:`ReconnectingTransport.rpc` registers its waiter only once the reply address is there and the
  request about to go (nothing fails a future nobody awaits), and takes it out however it ends.
- :func:`run_handler`: a consumer's handler on one delivery (a raised exception rejects it, no requeue).
  Drivers create its task themselves: nothing here sits per message between the socket and the handler.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from gvnfm.redact import mask_urls
from gvnfm.transport.base import BrokerRefused, Delivery, Handler, QueueSpec, RpcTimeout, Transport, TransportError

log = logging.getLogger(__name__)

#: The URL without its password, for messages and logs (the one masking function).
safe_url = mask_urls


def backoff_delays(initial: float, maximum: float) -> Iterator[float]:
    """``initial, 2*initial, 4*initial, ...`` capped at ``maximum``, forever."""
    delay = max(0.0, initial)
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2 if delay > 0 else maximum, maximum)


class ConnectRefused(TransportError):
    """The broker is reachable but refuses what connecting needs (credentials, virtual host, exchange):
    retrying does not help, ``connect()`` fails at once."""


async def run_handler(queue: str, handler: Handler, delivery: Delivery) -> None:
    """``handler(delivery)``; an exception is logged and rejects the message (no requeue)."""
    try:
        await handler(delivery)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("event=consumer_failed queue=%s routing_key=%s; message rejected", queue,
                      delivery.message.routing_key)
        await delivery.reject(requeue=False)


@dataclass(eq=False)
class ConsumerEntry:
    """A consumer as the transport keeps it across connections."""

    queue: str
    handler: Handler
    prefetch: int
    active: bool = True
    #: its handlers running (``close_when_idle``, ``cancel`` wait for them)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class ReplyWaiters:
    """The RPCs waiting for a reply, by correlation id (several may wait on one id), and the host user
    whose reply an id awaits (``rpc(expect_user=)``: AMQP only), kept while a waiter of the id is."""

    __slots__ = ("_expect", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[bytes]]] = {}
        self._expect: dict[str, str] = {}

    def wait(self, correlation_id: str, expect_user: str | None = None) -> asyncio.Future[bytes]:
        """A future that the reply with this id (or a lost connection) settles."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.add(correlation_id, fut)
        if expect_user is not None:
            self._expect[correlation_id] = expect_user
        return fut

    def expected_user(self, correlation_id: str | None) -> str | None:
        return self._expect.get(correlation_id or "")

    def add(self, correlation_id: str, fut: asyncio.Future[bytes]) -> None:
        """``fut`` waits on the id too (failed with the others when the connection goes)."""
        self._waiting.setdefault(correlation_id, []).append(fut)

    def forget(self, correlation_id: str, fut: asyncio.Future[bytes]) -> bool:
        """Take ``fut`` out (its RPC is over); True when it was the id's last waiter."""
        waiters = self._waiting.get(correlation_id)
        if waiters is None or fut not in waiters:
            return False
        waiters.remove(fut)
        if waiters:
            return False
        del self._waiting[correlation_id]
        self._expect.pop(correlation_id, None)
        return True

    def resolve(self, correlation_id: str | None, body: bytes) -> bool:
        """Answer every waiter of the id; False when none waits (a late reply)."""
        self._expect.pop(correlation_id or "", None)
        waiters = self._waiting.pop(correlation_id or "", None)
        if not waiters:
            return False
        for fut in waiters:
            if not fut.done():
                fut.set_result(body)
        return True

    def fail_all(self, error: TransportError) -> None:
        waiting, self._waiting = self._waiting, {}
        self._expect.clear()
        for waiters in waiting.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(error)


ConnT = TypeVar("ConnT")
ConsumerT = TypeVar("ConsumerT", bound=ConsumerEntry)


class ReconnectingTransport(Transport, Generic[ConnT, ConsumerT]):
    """The lifecycle above a driver's connection (see the module docstring). A driver provides
    :meth:`_attempt` (one connection for ``connect()``), :meth:`_reopen` (one for the reconnect loop,
    everything re-made on it), :meth:`_reply_address` and :meth:`_send_request` (``rpc``),
    :meth:`_disconnect` (``close()``); it may refine the other ``_`` hooks, and says how it logs
    (``_kind``: the ``event=<kind>_...`` prefix; ``_log``: its module's logger)."""

    _kind: ClassVar[str]
    _log: ClassVar[logging.Logger]
    #: errors of a connection attempt that a later attempt may cure (``connect()``)
    _retry_on: ClassVar[tuple[type[BaseException], ...]] = (TransportError,)
    #: errors of a re-connection attempt after which the loop tries again (others end it)
    _reopen_errors: ClassVar[tuple[type[BaseException], ...]] = (TransportError,)

    def __init__(self, url: str, *, exchange: str, reconnect_initial: float, reconnect_max: float,
                 connect_timeout: float, max_message_bytes: int, publish_timeout: float) -> None:
        self.url = url
        self.exchange = exchange
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = max(reconnect_max, reconnect_initial)
        self.connect_timeout = connect_timeout
        self.max_message_bytes = max_message_bytes
        self.publish_timeout = publish_timeout
        #: Number of connections established after the first one.
        self.reconnects = 0
        #: The back-off delays slept during the last (or current) outage.
        self.last_backoff: list[float] = []

        self._conn: ConnT | None = None
        self._generation = 0
        self._started = False     # connect() succeeded and close() was not called
        self._ready = asyncio.Event()
        self._connect_lock = asyncio.Lock()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._callbacks: list[Callable[[], Awaitable[None]]] = []

        self._queues: dict[str, QueueSpec] = {}
        self._consumers: list[ConsumerT] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending = ReplyWaiters()
        self._reply_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({safe_url(self.url)!r}, exchange={self.exchange!r})"

    @property
    def connected(self) -> bool:
        return self._started and self._ready.is_set()

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callbacks.append(callback)

    # -- the driver's part -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def _attempt(self, timeout: float) -> None:
        """One connection attempt of ``connect()``: on failure nothing stays open; a refusal that
        retrying does not cure raises :class:`ConnectRefused` with the message for the caller."""

    @abc.abstractmethod
    async def _reopen(self) -> None:
        """One re-connection attempt of the reconnect loop, the queues and consumers re-made."""

    def _reopen_failed(self, exc: BaseException, attempt: int, delay: float) -> bool:
        """A re-connection attempt failed with one of ``_reopen_errors``: log; False ends the loop."""
        return True

    def _reopened(self, attempt: int) -> None:
        """A re-connection succeeded (before the callbacks run)."""

    @abc.abstractmethod
    async def _reply_address(self, timeout: float | None) -> tuple[str, int]:
        """The reply address of this connection (made on first use) and the connection's generation;
        waits for a reconnection at most ``timeout``."""

    @abc.abstractmethod
    async def _send_request(self, routing_key: str, body: bytes, *, exchange: str | None, reply_to: str,
                            correlation_id: str, generation: int) -> None:
        """Publish an RPC request; fails when the connection of ``generation`` is gone."""

    def _check_size(self, body: bytes) -> None:
        """Refuse a body over ``max_message_bytes`` before any I/O."""
        if len(body) > self.max_message_bytes:
            raise BrokerRefused(f"message of {len(body)} bytes exceeds the limit of {self.max_message_bytes} bytes")

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """``close()``'s end: close the connection, forget its state (never raises)."""

    def _forget_queue(self, queue: str) -> None:
        """The broker deleted ``queue``: not re-made on a reconnection (the driver drops its bindings too)."""
        self._queues.pop(queue, None)

    def _conn_closed(self, conn: ConnT) -> bool:
        """The connection object says it is closed (before the driver's loss handling ran)."""
        return False

    @staticmethod
    def _describe(exc: BaseException) -> str:
        return str(exc)

    # -- connecting ----------------------------------------------------------------------------------------
    async def _connect_retrying(self) -> None:
        """``_attempt`` with back-off until ``connect_timeout`` (at least one attempt)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delays = backoff_delays(self.reconnect_initial, self.reconnect_max)
        while True:
            try:
                await self._attempt(max(0.1, deadline - loop.time()))
                return
            except ConnectRefused:
                raise
            except self._retry_on as exc:
                remaining = deadline - loop.time()
                if remaining <= 0.05:
                    raise TransportError(f"cannot connect to {safe_url(self.url)} within "
                                         f"{self.connect_timeout:g} s: {self._describe(exc)}") from exc
                delay = min(next(delays), remaining)
                self._log.info("event=%s_connect_retry url=%s in=%.2fs error=%r", self._kind, safe_url(self.url),
                               delay, self._describe(exc))
                await asyncio.sleep(delay)

    def _may_reconnect(self) -> bool:
        return self._started

    def _start_reconnecting(self) -> None:
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        self.last_backoff = []
        delays = backoff_delays(self.reconnect_initial, self.reconnect_max)
        attempt = 0
        while self._may_reconnect():
            delay = next(delays)
            self.last_backoff.append(delay)
            await asyncio.sleep(delay)
            if not self._may_reconnect():
                return
            attempt += 1
            try:
                await self._reopen()
            except self._reopen_errors as exc:
                if self._reopen_failed(exc, attempt, delay):
                    continue
                return
            self.reconnects += 1
            self._reopened(attempt)
            for callback in list(self._callbacks):
                try:
                    await callback()
                except Exception:
                    self._log.exception("event=%s_reconnect_callback_failed callback=%r", self._kind, callback)
            return

    async def _wait_ready(self, timeout: float | None = None) -> ConnT:
        """The live connection; waits for a reconnection (at most ``connect_timeout``, and ``timeout``)."""
        if not self._started:
            raise TransportError("transport is not connected")
        if not self._ready.is_set():
            limit = self.connect_timeout if timeout is None else max(0.0, min(timeout, self.connect_timeout))
            try:
                async with asyncio.timeout(limit):
                    await self._ready.wait()
            except TimeoutError:
                raise TransportError(f"not connected to the broker (reconnecting to {safe_url(self.url)})") from None
        conn = self._conn
        if not self._started:
            raise TransportError("transport is closed")
        if conn is None or self._conn_closed(conn):
            raise TransportError("connection lost")
        return conn

    # -- request / reply -----------------------------------------------------------------------------------
    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None,
                  exchange: str | None = None, correlation_id: str | None = None,
                  expect_user: str | None = None) -> bytes:
        self._check_size(body)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                reply_to, generation = await self._reply_address(
                    None if timeout is None else max(0.0, timeout - (time.monotonic() - started)))
                cid = correlation_id or uuid.uuid4().hex
                fut = self._pending.wait(cid, expect_user)
                try:
                    await self._send_request(routing_key, body, exchange=exchange, reply_to=reply_to,
                                             correlation_id=cid, generation=generation)
                    return await fut
                finally:
                    self._pending.forget(cid, fut)
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s") from exc

    # -- closing -------------------------------------------------------------------------------------------
    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._ready.set()   # wake operations waiting for a reconnection; they see the transport closed
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in self._consumers:
            consumer.active = False
        handler_tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in handler_tasks:
            t.cancel()
        if handler_tasks:
            await asyncio.wait(handler_tasks, timeout=5)
        self._pending.fail_all(TransportError("connection closed"))
        await self._disconnect()
        self._queues.clear()
        self._consumers.clear()
        self._tasks.clear()
        self._log.info("event=%s_closed url=%s", self._kind, safe_url(self.url))

    # -- consumers -----------------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None], consumer: ConsumerT | None = None) -> None:
        """A task the transport owns (cancelled by ``close()``), counted in flight for ``consumer``."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if consumer is not None:
            consumer.inflight.add(task)
            task.add_done_callback(consumer.inflight.discard)

    def _forget_consumer(self, consumer: ConsumerT) -> bool:
        """Deactivate ``consumer`` and drop it from what is re-made; False when it was not active. The
        last consumer of an auto-delete queue takes the queue with it (the broker deletes it)."""
        if not consumer.active:
            return False
        consumer.active = False
        if consumer in self._consumers:
            self._consumers.remove(consumer)
        spec = self._queues.get(consumer.queue)
        if spec is not None and spec.auto_delete and not any(c.queue == consumer.queue for c in self._consumers):
            self._forget_queue(consumer.queue)
        return True
