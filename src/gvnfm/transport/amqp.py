"""The RabbitMQ transport (aio-pika), with the semantics documented in ``transport.base``.

Connection handling (the lifecycle shared with STOMP is ``transport.lifecycle``):
- ``connect()`` retries with back-off until ``connect_timeout``; refused credentials fail at once.
- When an established connection drops, a background task reconnects forever with capped exponential
  back-off (``reconnect_initial`` doubling up to ``reconnect_max``, restarting from ``reconnect_initial``
  after every successful connection). It re-declares the exchange (the connection's opening, bounded by
  ``connect_timeout``), re-creates the RPC reply queue, re-declares the queues this transport declared,
  re-binds them and restarts their consumers, queue by queue on up to ``RESTORE_CHANNELS`` channels at
  once (each operation bounded by ``publish_timeout``, a queue tried again as after a channel error), and
  only then runs the ``on_reconnect`` callbacks. The lost connection is closed on this side (aio-pika
  leaves one the broker closed open, and its ``__del__`` would close it in whichever thread collects it).
- While the connection is down, RPCs waiting for a reply fail at once with ``TransportError("connection
  lost")``; new operations wait for the reconnection (at most ``connect_timeout``) and then fail with
  ``TransportError``.

Channels: one for publishing (publisher confirms; opened by every connect beside the declarations, so
that the first publish, an EMS's registration, waits for no channel), one for declarations and bindings
(a failing declaration closes only that channel, which is re-opened on next use), one per consumer (its
own prefetch; ``shared_consumer_channel``: one for all consumers, each with its own prefetch, as the EMS
fleet's thousand agents on a connection have) and one for the RPC reply queue. A consumer's channel that
the broker closes while the connection lives on (a channel error; RabbitMQ's ``consumer_timeout`` for a
delivery unacknowledged too long) is replaced, the queues and bindings of its consumers made again first
(an auto-delete queue went with it, and what was queued in it), and each consumer's ``on_restored`` runs.
That restore makes the queues and bindings on up to ``RESTORE_CHANNELS`` channels at once (the broker
makes queues in parallel on different channels), and tries a consumer again a few times when its queue
was not found (``_remake_queue`` says why).
aio-pika opens and declares; the hot paths (publish, consume, ack, the reply queue) use the aiormq channel
under it, without aio-pika's per-message objects (measured in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
)
from aiormq.abc import DeliveredMessage
from yarl import URL

from gvnfm.transport.base import (
    DEFAULT_EXCHANGE,
    BrokerRefused,
    Delivery,
    Handler,
    Message,
    QueueSpec,
    Restored,
    RpcTimeout,
    Subscription,
    TransportError,
)
from gvnfm.transport.lifecycle import (
    ConnectRefused,
    ConsumerEntry,
    ReconnectingTransport,
    backoff_delays,
    run_handler,
    safe_url,
)
from gvnfm.transport.tls import certificate_problem

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: RabbitMQ's direct reply-to pseudo-queue (consumed no-ack on the channel that publishes the request)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
_PERSISTENT = 2   # delivery_mode
#: Channels a restore makes queues and bindings again on, at once (each channel waits for every answer; the
#: broker makes queues on different channels in parallel). RabbitMQ 3.10, a fleet of 1,000 agents: 4.46 s on
#: one channel, 2.62 s on 8 (``bench.restore_micro --restore-channels``; docs/performance.md, eleventh round).
RESTORE_CHANNELS = 8
#: A consumer whose queue could not be made again (NOT_FOUND while the broker still deleted the old one)
#: is tried again after 0.5, 1, 2, 4 s, then given up (logged: ``event=amqp_consumer_lost``).
RESTORE_ATTEMPTS = 5
RESTORE_RETRY_INITIAL, RESTORE_RETRY_MAX = 0.5, 4.0

# Errors of the broker or of the socket that become TransportError.
_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)
# Connection refusals that retrying does not cure.
_FATAL_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ConnectionNotAllowed,
    aiormq.exceptions.IncompatibleProtocolError,
    aiormq.exceptions.InvalidFrameError,      # Connection.Close instead of OpenOk: no such vhost, no access
)


class _FatalConnectError(ConnectRefused):
    """The broker is reachable but refuses what connecting needs: retrying does not help."""


@contextlib.contextmanager
def _as_transport_error(what: str) -> Iterator[None]:
    try:
        yield
    except TransportError:
        raise
    except _BROKER_ERRORS as exc:
        kind = BrokerRefused if _refused_for_good(exc) else TransportError
        raise kind(f"{what}: {_describe(exc)}") from exc
    except (ValueError, TypeError) as exc:   # not encodable: a name over 255 bytes, a header value...
        raise BrokerRefused(f"{what}: {exc}") from exc


#: Channel-closing refusals that answer the request itself, not the connection's state: ACCESS_REFUSED,
#: PRECONDITION_FAILED (a message over the broker's max_message_size, a queue in use), NOT_ALLOWED (530).
_REFUSALS: tuple[type[BaseException], ...] = (aiormq.exceptions.ChannelAccessRefused,
                                              aiormq.exceptions.ChannelPreconditionFailed)


def _refused_for_good(exc: BaseException) -> bool:
    if isinstance(exc, _REFUSALS):
        return True
    return isinstance(exc, aiormq.exceptions.ChannelClosed) and len(exc.args) >= 1 and exc.args[0] == 530


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiormq.exceptions.ChannelClosed) and len(exc.args) >= 2:
        return str(exc.args[1])
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class _WorkerChannel:
    """A channel of ``conn`` for one worker of a restore: opened when first used, and again after a broker
    error closed it (a refused declaration closes its channel)."""

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self._ch: AbstractChannel | None = None

    async def get(self) -> AbstractChannel:
        if self._ch is None or self._ch.is_closed:
            with _as_transport_error("cannot open a channel"):
                self._ch = await self.conn.channel(publisher_confirms=False)
        return self._ch

    async def close(self) -> None:
        if self._ch is not None and not self._ch.is_closed:
            with contextlib.suppress(Exception):
                await self._ch.close()


@dataclass(eq=False)
class _Consumer(ConsumerEntry):
    channel: AbstractChannel | None = None
    tag: str | None = None
    on_restored: Restored | None = None


class _AmqpDelivery(Delivery):
    def __init__(self, message: Message, incoming: DeliveredMessage) -> None:
        self.message = message
        self._incoming = incoming
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        if self._settled:
            return
        self._settled = True
        try:   # queued for the socket; if the connection dies first, the broker redelivers
            await self._incoming.channel.basic_ack(self._incoming.delivery.delivery_tag, wait=False)  # type: ignore[union-attr,arg-type]  # (a consumed message's delivery is a Deliver)
        except Exception as exc:   # the channel is gone: the broker redelivers the message
            log.debug("ack of %r not sent: %s", self.message.routing_key, _describe(exc))

    async def reject(self, requeue: bool = False) -> None:
        if self._settled:
            return
        self._settled = True
        try:
            await self._incoming.channel.basic_reject(
                self._incoming.delivery.delivery_tag, requeue=requeue)  # type: ignore[union-attr,arg-type]  # (a consumed message's delivery is a Deliver)
        except Exception as exc:
            log.debug("reject of %r not sent: %s", self.message.routing_key, _describe(exc))


class _AmqpSubscription(Subscription):
    def __init__(self, transport: AmqpTransport, consumer: _Consumer) -> None:
        self._transport = transport
        self._consumer = consumer

    async def cancel(self) -> None:
        await self._transport._cancel_consumer(self._consumer)


def _to_message(incoming: DeliveredMessage) -> Message:
    props = incoming.header.properties
    delivery = cast(aiormq.spec.Basic.Deliver, incoming.delivery)   # (a consumed message's delivery)
    return Message(body=incoming.body, routing_key=delivery.routing_key or "", reply_to=props.reply_to,
                   correlation_id=props.correlation_id, content_type=props.content_type or "text/plain",
                   redelivered=bool(delivery.redelivered), headers=dict(props.headers or {}), user_id=props.user_id)


class AmqpTransport(ReconnectingTransport[AbstractConnection, _Consumer]):
    _kind = "amqp"
    _log = log
    _retry_on = (*_BROKER_ERRORS, TransportError)
    _reopen_errors = (Exception,)
    _describe = staticmethod(_describe)

    def __init__(self, url: str, *, exchange: str = DEFAULT_EXCHANGE, reconnect_initial: float = 0.5,
                 reconnect_max: float = 10.0, heartbeat: int | None = None, connect_timeout: float = 10,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, publish_timeout: float = 30.0,
                 shared_consumer_channel: bool = False) -> None:
        super().__init__(url, exchange=exchange, reconnect_initial=reconnect_initial, reconnect_max=reconnect_max,
                         connect_timeout=connect_timeout, max_message_bytes=max_message_bytes,
                         publish_timeout=publish_timeout)
        self.heartbeat = heartbeat

        self._pub: AbstractChannel | None = None
        self._admin: AbstractChannel | None = None
        self._admin_lock = asyncio.Lock()
        self._pub_lock = asyncio.Lock()
        #: all consumers on one channel (the EMS fleet's many agents), not one channel each
        self.shared_consumer_channel = shared_consumer_channel
        self._consuming: AbstractChannel | None = None
        self._consuming_prefetch: int | None = None
        self._consuming_lock = asyncio.Lock()

        self._bindings: dict[str, dict[str, None]] = {}   # queue -> its routing keys, in the order bound

        self._reply_wanted = False
        self._reply_queue: str | None = None
        self._reply_channel: AbstractChannel | None = None
        #: bind the reply queue to the exchange under its name, for host users' replies (``Transport.reply``)
        self.replies_via_exchange = False

    # -- connection ---------------------------------------------------------------------------------------
    async def connect(self) -> None:
        async with self._connect_lock:
            await self._connect()

    async def _connect(self) -> None:
        if self._started:
            return
        try:
            URL(self.url).port  # noqa: B018  (validates the URL)
        except (TypeError, ValueError) as exc:
            raise TransportError(f"invalid broker URL {safe_url(self.url)}: {exc}") from exc
        self._ready = asyncio.Event()
        await self._connect_retrying()
        self._started = True
        self._ready.set()
        log.info("event=amqp_connected url=%s exchange=%s", safe_url(self.url), self.exchange)

    async def _attempt(self, timeout: float) -> None:
        try:
            await self._open(timeout=timeout)
        except _FATAL_CONNECT_ERRORS as exc:
            why = ("it closed the connection during the handshake (unknown virtual host, or no access to it)"
                   if isinstance(exc, aiormq.exceptions.InvalidFrameError) else _describe(exc))
            raise ConnectRefused(f"the broker at {safe_url(self.url)} refused the connection: {why}") from exc
        except _BROKER_ERRORS as exc:
            query = URL(self.url).query
            problem = certificate_problem(exc, cafile=query.get("cafile"), certfile=query.get("certfile"))
            if problem is None:
                raise
            # retrying cannot cure a certificate (aiormq reports it as a connection error, which is retried)
            raise ConnectRefused(f"cannot connect to {safe_url(self.url)}: {problem}") from exc

    async def _open(self, timeout: float) -> None:
        """Open a connection and (re-)establish everything on it; on failure nothing stays open."""
        kwargs: dict[str, Any] = {"timeout": timeout, "client_properties": {"connection_name": "gvnfm"}}
        if self.heartbeat is not None:
            kwargs["heartbeat"] = self.heartbeat
        conn = await asyncio.wait_for(aio_pika.connect(self.url, **kwargs), timeout)
        opening: asyncio.Future[AbstractChannel] | None = None
        try:
            async with asyncio.timeout(max(timeout, self.connect_timeout)):
                self._generation += 1
                self._conn = conn
                self._forget_channels()
                # the publishing channel opens beside the declarations, so that the first publish (an
                # EMS's registration, the VNFM's first answer) does not wait for its two round trips
                opening = asyncio.ensure_future(self._pub_channel())
                admin = await self._admin_channel()
                try:
                    await admin.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
                except aiormq.exceptions.ChannelAccessRefused:
                    # A user with the NFVO's per-VNFM permissions may not configure the exchange; it
                    # exists already (the NFVO declared it): check it passively.
                    self._admin = None
                    admin = await self._admin_channel()
                    try:
                        await admin.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, passive=True)
                    except aiormq.exceptions.ChannelClosed as exc:
                        raise _FatalConnectError(f"cannot use the topic exchange {self.exchange!r}: "
                                                 f"{_describe(exc)}") from exc
                except aiormq.exceptions.ChannelClosed as exc:
                    raise _FatalConnectError(f"cannot declare the topic exchange {self.exchange!r}: "
                                             f"{_describe(exc)}") from exc
                await opening
            await self._restore(conn)
            if conn.is_closed:
                raise TransportError("connection lost while restoring queues and consumers")
            conn.close_callbacks.add(self._on_connection_closed)
        except BaseException:
            self._conn = None
            if opening is not None:
                opening.cancel()
            with contextlib.suppress(Exception):
                await conn.close()
            if opening is not None:
                await asyncio.wait({opening})
                if not opening.cancelled():
                    opening.exception()   # retrieved: this attempt failed for the reason raised here
            raise

    async def _restore(self, conn: AbstractConnection) -> None:
        """After a reconnection: the RPC reply queue, then every queue this transport declared, with its
        bindings, and the consumers of each, queue by queue on up to ``RESTORE_CHANNELS`` channels at once
        (:meth:`_bring_back`). Each operation is bounded by ``publish_timeout``, the whole is not: ten
        connections of a 10,000-agent fleet restoring at once after a broker restart took longer than
        ``connect_timeout``, and every attempt was cut off and began again (docs/performance.md, twelfth
        round)."""
        if self._reply_wanted:
            await self._create_reply_queue()
        by_queue: dict[str, list[_Consumer]] = {name: [] for name in self._queues}
        for consumer in self._consumers:
            if consumer.active:
                by_queue.setdefault(consumer.queue, []).append(consumer)
        generation = self._generation

        async def restore(channel: _WorkerChannel, item: tuple[str, list[_Consumer]]) -> None:
            await self._bring_back(channel, *item, generation)

        await self._in_parallel(conn, list(by_queue.items()), restore)

    async def _on_connection_closed(self, conn: Any, exc: BaseException | None) -> None:
        if not conn.close_called:
            # aio-pika leaves a connection the broker closed open on its own side (``is_closed`` False);
            # dropped so, its ``__del__`` would schedule ``close()`` in whichever thread collects it, which in
            # one without an event loop is a "coroutine 'Connection.close' was never awaited" warning
            self._spawn(self._close_channel(conn))
        if conn is not self._conn or not self._started:
            return   # an old connection, or our own close()
        self._conn = None
        self._forget_channels()
        self._ready.clear()
        for consumer in self._consumers:
            consumer.channel = None
            consumer.tag = None
        self._pending.fail_all(TransportError("connection lost"))
        log.warning("event=amqp_connection_lost url=%s error=%r", safe_url(self.url),
                    _describe(exc) if exc else "closed")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._start_reconnecting()

    async def _reopen(self) -> None:
        await self._open(timeout=self.connect_timeout)

    def _reopen_failed(self, exc: BaseException, attempt: int, delay: float) -> bool:
        log.warning("event=amqp_reconnect_failed attempt=%d next_in=%.2fs error=%r", attempt,
                    min(delay * 2, self.reconnect_max), _describe(exc))
        return True

    def _reopened(self, attempt: int) -> None:
        self._ready.set()
        log.info("event=amqp_reconnected url=%s attempt=%d", safe_url(self.url), attempt)
        self._reconnect_task = None

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(5):
                    await conn.close()
            except Exception as exc:   # TimeoutError included
                log.debug("closing the AMQP connection: %s", _describe(exc))
        self._forget_channels()
        self._reply_wanted = False
        self._bindings.clear()

    def _conn_closed(self, conn: AbstractConnection) -> bool:
        return conn.is_closed

    # -- channels -------------------------------------------------------------------------------------------
    def _forget_channels(self) -> None:
        """The channels of a connection that is gone (or going): the next use opens new ones."""
        self._pub = self._admin = self._reply_channel = self._consuming = None
        self._reply_queue = None

    async def _admin_channel(self) -> AbstractChannel:
        ch = self._admin
        if ch is None or ch.is_closed:
            if self._conn is None:
                raise TransportError("connection lost")
            with _as_transport_error("cannot open a channel"):
                ch = await self._conn.channel(publisher_confirms=False)
            self._admin = ch
        return ch

    async def _pub_channel(self) -> AbstractChannel:
        ch = self._pub
        if ch is None or ch.is_closed:
            async with self._pub_lock:
                ch = self._pub
                if ch is None or ch.is_closed:
                    if self._conn is None:
                        raise TransportError("connection lost")
                    with _as_transport_error("cannot open a channel"):
                        ch = await self._conn.channel(publisher_confirms=True)
                    self._pub = ch
        return ch

    @contextlib.asynccontextmanager
    async def _admin_op(self, what: str) -> AsyncIterator[AbstractChannel]:
        """Serialised declarations/bindings: a broker error closes only the admin channel, and only
        the failing operation sees it."""
        async with self._admin_lock:
            with _as_transport_error(what):
                async with asyncio.timeout(self.publish_timeout):
                    yield await self._admin_channel()

    # -- declarations ------------------------------------------------------------------------------------
    async def declare_queue(self, name: str, *, durable: bool = False, auto_delete: bool = False,
                            exclusive: bool = False, bind: bool = True) -> None:
        await self._wait_ready()
        spec = QueueSpec(durable=durable, auto_delete=auto_delete, exclusive=exclusive)
        await self._declare(name, spec)
        self._queues[name] = spec
        if bind:
            await self.bind(name, name)

    async def _declare(self, name: str, spec: QueueSpec) -> None:
        async with self._admin_op(f"cannot declare queue {name!r}") as ch:
            await ch.declare_queue(name, durable=spec.durable, auto_delete=spec.auto_delete,
                                   exclusive=spec.exclusive)

    async def delete_unused_queue(self, name: str) -> int:
        await self._wait_ready()
        async with self._admin_op(f"cannot delete queue {name!r} (consumed by another client?)") as ch:
            ok = await (await ch.get_underlay_channel()).queue_delete(name, if_unused=True)
        self._queues.pop(name, None)
        return int(getattr(ok, "message_count", 0) or 0)

    async def bind(self, queue: str, routing_key: str) -> None:
        await self._wait_ready()
        await self._bind(queue, routing_key)
        self._bindings.setdefault(queue, {})[routing_key] = None

    async def _bind(self, queue: str, routing_key: str) -> None:
        async with self._admin_op(f"cannot bind {queue!r} to {routing_key!r}") as ch:
            q = await ch.get_queue(queue, ensure=False)
            await q.bind(self.exchange, routing_key)

    # -- publishing ----------------------------------------------------------------------------------------
    async def publish(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                      reply_to: str | None = None, correlation_id: str | None = None,
                      headers: dict[str, Any] | None = None, user_id: str | None = None) -> None:
        self._check_size(body)
        await self._wait_ready()
        await self._publish(routing_key, body, exchange=exchange, reply_to=reply_to,
                            correlation_id=correlation_id, headers=headers, user_id=user_id)

    async def publish_routed(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                             user_id: str | None = None) -> bool:
        self._check_size(body)
        await self._wait_ready()
        return await self._publish(routing_key, body, exchange=exchange, reply_to=None, correlation_id=None,
                                   headers=None, mandatory=True, user_id=user_id)

    async def _publish(self, routing_key: str, body: bytes, *, exchange: str | None, reply_to: str | None,
                       correlation_id: str | None, headers: dict[str, Any] | None,
                       generation: int | None = None, mandatory: bool = False, user_id: str | None = None) -> bool:
        """Publish with a publisher confirm; False when ``mandatory`` and the broker returned it."""
        name = self.exchange if exchange is None else exchange
        with _as_transport_error(f"cannot publish {routing_key!r} to exchange {name!r}"):
            ch = await self._pub_channel()
            if generation is not None and generation != self._generation:
                raise TransportError("connection lost")
            properties = aiormq.spec.Basic.Properties(content_type="text/plain", delivery_mode=_PERSISTENT,
                                                      reply_to=reply_to, correlation_id=correlation_id,
                                                      headers=headers or None, user_id=user_id)
            underlay = await ch.get_underlay_channel()
            # with publisher confirms: returns once the broker took it (a Nack raises DeliveryError); an
            # unroutable mandatory message comes back as the returned message instead of the ack
            # wait=False: no separate wait for the socket write, the broker's confirm follows it anyway
            confirmation = await underlay.basic_publish(body, exchange=name, routing_key=routing_key,
                                                        properties=properties, mandatory=mandatory,
                                                        timeout=self.publish_timeout, wait=False)  # type: ignore[call-arg]  # (aiormq takes it)
        return not isinstance(confirmation, DeliveredMessage)

    # -- consuming -----------------------------------------------------------------------------------------
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 0,
                      on_restored: Restored | None = None) -> Subscription:
        await self._wait_ready()
        consumer = _Consumer(queue=queue, handler=handler, prefetch=max(0, prefetch), on_restored=on_restored)
        await self._start_consumer(consumer)
        self._consumers.append(consumer)
        return _AmqpSubscription(self, consumer)

    async def _start_consumer(self, consumer: _Consumer) -> None:
        conn = self._conn
        if conn is None:
            raise TransportError("connection lost")
        generation = self._generation
        with _as_transport_error(f"cannot consume from {consumer.queue!r}"):
            async with asyncio.timeout(self.publish_timeout):
                if self.shared_consumer_channel:
                    async with self._consuming_lock:
                        ch = await self._shared_consumer_channel(conn)
                        if self._consuming_prefetch != consumer.prefetch:   # basic.qos applies to the
                            await ch.set_qos(prefetch_count=consumer.prefetch)   # consumers started after it
                            self._consuming_prefetch = consumer.prefetch
                        tag = await self._basic_consume(ch, consumer, generation)
                else:
                    ch = await conn.channel(publisher_confirms=False)
                    try:
                        await ch.set_qos(prefetch_count=consumer.prefetch)
                        tag = await self._basic_consume(ch, consumer, generation)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            if not ch.is_closed:
                                await ch.close()
                        raise
                    ch.close_callbacks.add(self._on_consumer_channel_closed(ch, generation))
        if ch.is_closed:
            # closed while consume-ok was on its way (another consumer's NOT_FOUND closes a shared channel):
            # its close callback has already listed the consumers to restore, without this one
            raise TransportError(f"cannot consume from {consumer.queue!r}: its channel closed meanwhile")
        consumer.channel, consumer.tag = ch, tag

    async def _shared_consumer_channel(self, conn: AbstractConnection) -> AbstractChannel:
        ch = self._consuming
        if ch is None or ch.is_closed:
            ch = await conn.channel(publisher_confirms=False)
            self._consuming, self._consuming_prefetch = ch, None
            ch.close_callbacks.add(self._on_consumer_channel_closed(ch, self._generation))
        return ch

    async def _basic_consume(self, ch: AbstractChannel, consumer: _Consumer, generation: int) -> str:
        def on_message(incoming: DeliveredMessage) -> None:
            self._dispatch(consumer, generation, incoming)

        underlay = await ch.get_underlay_channel()
        ok = await underlay.basic_consume(consumer.queue, on_message, no_ack=False)  # type: ignore[arg-type]
        return str(ok.consumer_tag)

    def _on_consumer_channel_closed(self, ch: AbstractChannel,
                                    generation: int) -> Callable[[Any, BaseException | None], Awaitable[None]]:
        """The consumers of ``ch`` (one, or all of a shared channel) when the broker closed it while the
        connection lives on (a channel error): each is started again on a new channel, its queue and
        bindings made again first, and then its ``on_restored`` runs. (When the whole connection went
        down, the reconnect loop restarts them instead.)"""
        async def closed(_sender: Any, exc: BaseException | None) -> None:
            lost = [c for c in self._consumers if c.channel is ch and c.active]
            for consumer in lost:
                consumer.channel = consumer.tag = None
            if not lost or not self._started:
                return
            await asyncio.sleep(0.05)
            conn = self._conn
            if conn is None or conn.is_closed or generation != self._generation:
                return
            log.warning("event=amqp_consumer_channel_closed queues=%s error=%r",
                        ",".join(c.queue for c in lost[:5]) + (f",... ({len(lost)})" if len(lost) > 5 else ""),
                        _describe(exc) if exc else "closed")

            async def restore(channel: _WorkerChannel, consumer: _Consumer) -> None:
                for back in await self._bring_back(channel, consumer.queue, [consumer], generation):
                    if back.on_restored is not None:
                        self._spawn(self._run_restored(back.queue, back.on_restored))

            await self._in_parallel(conn, lost, restore)

        return closed

    async def _bring_back(self, channel: _WorkerChannel, queue: str, consumers: list[_Consumer],
                          generation: int) -> list[_Consumer]:
        """``queue`` made again as it was declared, with its bindings (:meth:`_remake_queue`), and those of
        ``consumers`` that are active and not consuming started on it; the ones started are returned. A
        failure is tried again after 0.5, 1, 2 and 4 s; a refusal, or the fifth failure, gives the consumers
        up (``event=amqp_consumer_lost``; ``event=amqp_redeclare_failed`` for a queue nobody here consumes).
        Stops when the connection of ``generation`` is gone (the reconnection restores everything)."""
        delays = backoff_delays(RESTORE_RETRY_INITIAL, RESTORE_RETRY_MAX)
        started: list[_Consumer] = []
        for attempt in range(1, RESTORE_ATTEMPTS + 1):
            waiting = [c for c in consumers if c.active and c.channel is None]
            if generation != self._generation or channel.conn.is_closed or (consumers and not waiting):
                return started
            try:
                await self._remake_queue(queue, channel)
                for consumer in waiting:
                    await self._start_consumer(consumer)
                    started.append(consumer)
                return started
            except TransportError as err:
                if isinstance(err, BrokerRefused) or attempt == RESTORE_ATTEMPTS:
                    for consumer in waiting:
                        if consumer.channel is None:
                            consumer.active = False
                            log.error("event=amqp_consumer_lost queue=%s attempts=%d error=%r", queue, attempt,
                                      str(err))
                    if not consumers:
                        log.error("event=amqp_redeclare_failed queue=%s attempts=%d error=%r", queue, attempt,
                                  str(err))
                    return started
                log.warning("event=amqp_consumer_restore_failed queue=%s attempt=%d error=%r", queue, attempt,
                            str(err))
            await asyncio.sleep(next(delays))
        return started

    @staticmethod
    async def _in_parallel(conn: AbstractConnection, items: list[_T],
                           job: Callable[[_WorkerChannel, _T], Awaitable[None]]) -> None:
        """``job(channel, item)`` for every item, in order, by up to ``RESTORE_CHANNELS`` workers at once, each
        with a channel of ``conn`` of its own (opened when first used, again after a broker error closed it,
        and closed at the end). ``job`` logs its own failures. Stops when the connection closes (the
        reconnection restores everything)."""
        todo = iter(items)

        async def worker() -> None:
            channel = _WorkerChannel(conn)
            try:
                for item in todo:   # one iterator for all workers: each item is taken once
                    if conn.is_closed:
                        return
                    await job(channel, item)
            finally:
                await channel.close()

        await asyncio.gather(*(worker() for _ in range(min(RESTORE_CHANNELS, len(items)))))

    @staticmethod
    async def _run_restored(queue: str, callback: Restored) -> None:
        try:
            await callback()
        except Exception as exc:   # the owner's business; the consumer itself is back
            log.warning("event=amqp_consumer_restored_callback_failed queue=%s error=%r", queue, str(exc))

    async def _remake_queue(self, queue: str, channel: _WorkerChannel) -> None:
        """``queue`` and its bindings as they were declared, after a channel error: an auto-delete queue (an
        EMS's) goes with its last consumer's channel, and with it what was queued. A channel error, such as
        RabbitMQ's ``consumer_timeout`` for a delivery unacknowledged too long (a long script: the EMS
        acknowledges after the reply), must not leave the consumer without a queue while the connection
        lives on.

        The broker deletes the lost queue in its own time, once it has seen its consumer go. With 10,000 on
        one channel, a few queues declared again while it was deleting the old ones were gone a moment later:
        at the binding, or at ``basic.consume``, whose NOT_FOUND closes the shared channel and every consumer
        on it (``bench.restore_micro --count 10000``). Deleting the queue first, or waiting until a passive
        declaration no longer finds it, did not prevent it; the caller tries such a consumer again later."""
        spec = self._queues.get(queue)
        if spec is None:
            return
        with _as_transport_error(f"cannot declare queue {queue!r} and its bindings again"):
            async with asyncio.timeout(self.publish_timeout):
                ch = await channel.get()
                await ch.declare_queue(queue, durable=spec.durable, auto_delete=spec.auto_delete,
                                       exclusive=spec.exclusive)
                for key in list(self._bindings.get(queue, ())):
                    await (await ch.get_queue(queue, ensure=False)).bind(self.exchange, key)

    def _dispatch(self, consumer: _Consumer, generation: int, incoming: DeliveredMessage) -> None:
        delivery = _AmqpDelivery(_to_message(incoming), incoming)
        if generation != self._generation or not self._started:
            return   # the connection is (being) closed: the broker redelivers
        if not consumer.active:   # arrived between basic.cancel and cancel-ok: hand it back at once
            task = asyncio.get_running_loop().create_task(delivery.reject(requeue=True))
        else:   # (the task tracking of ``_spawn``, inline: the hot path)
            task = asyncio.get_running_loop().create_task(run_handler(consumer.queue, consumer.handler, delivery))
        consumer.inflight.add(task)
        self._tasks.add(task)
        task.add_done_callback(consumer.inflight.discard)
        task.add_done_callback(self._tasks.discard)

    def _forget_queue(self, queue: str) -> None:
        super()._forget_queue(queue)
        self._bindings.pop(queue, None)

    async def _cancel_consumer(self, consumer: _Consumer) -> None:
        if not self._forget_consumer(consumer):
            return
        ch, tag = consumer.channel, consumer.tag
        consumer.channel = consumer.tag = None
        if ch is None or ch.is_closed:
            return
        try:
            async with asyncio.timeout(5):
                if tag is not None:
                    await (await ch.get_underlay_channel()).basic_cancel(tag)
        except Exception as exc:
            log.debug("cancelling the consumer of %s: %s", consumer.queue, _describe(exc))
        if ch is self._consuming:
            return   # the others' channel: a message being handled is still acknowledged on it
        # Messages being handled can still be acknowledged; the channel closes when they are done.
        if consumer.inflight:
            self._spawn(self._close_when_idle(consumer, ch))
        else:
            await self._close_channel(ch)

    async def _close_when_idle(self, consumer: _Consumer, ch: AbstractChannel) -> None:
        if consumer.inflight:
            await asyncio.wait(list(consumer.inflight))
        await self._close_channel(ch)

    @staticmethod
    async def _close_channel(ch: AbstractChannel | AbstractConnection) -> None:
        """Close a channel, or a connection the broker closed (``_on_connection_closed``), within 5 s;
        a failure is only logged."""
        try:
            async with asyncio.timeout(5):
                if not ch.is_closed:
                    await ch.close()
        except Exception as exc:   # TimeoutError included
            log.debug("closing a %s: %s", type(ch).__name__, _describe(exc))

    # -- request / reply -----------------------------------------------------------------------------------
    async def _create_reply_queue(self) -> None:
        conn = self._conn
        if conn is None:
            raise TransportError("connection lost")
        with _as_transport_error("cannot create the reply queue"):
            async with asyncio.timeout(self.publish_timeout):
                ch = await conn.channel(publisher_confirms=False)
                q = await ch.declare_queue("", exclusive=True, auto_delete=True)
                if self.replies_via_exchange:   # host users answer through the exchange (see ``reply``)
                    await q.bind(self.exchange, routing_key=q.name)
                await (await ch.get_underlay_channel()).basic_consume(q.name, self._on_reply,  # type: ignore[arg-type]
                                                                     no_ack=True)
        self._reply_channel = ch
        self._reply_queue = q.name

        async def reply_channel_closed(_sender: Any, exc: BaseException | None) -> None:
            if self._reply_channel is ch and self._conn is conn and not conn.is_closed:
                # A channel error, the connection lives on: the next rpc() makes a new reply queue.
                log.warning("event=amqp_reply_channel_closed error=%r", _describe(exc) if exc else "closed")
                self._reply_channel = self._reply_queue = None
                self._pending.fail_all(TransportError("connection lost (the reply channel closed)"))

        ch.close_callbacks.add(reply_channel_closed)

    def _on_reply(self, incoming: DeliveredMessage) -> None:
        correlation_id = incoming.header.properties.correlation_id
        if incoming.delivery.exchange:  # type: ignore[union-attr]  # (a consumed message's delivery)
            # Through the topic exchange: a host user's answer (the default exchange is closed to them).
            # Taken only from the user of the host the request went to (RabbitMQ checked user_id).
            user = incoming.header.properties.user_id
            if user is None or user != self._pending.expected_user(correlation_id):
                log.warning("event=reply_refused correlation_id=%s user_id=%s reason=not_the_requested_host",
                            correlation_id, user)
                return
        if not self._pending.resolve(correlation_id, incoming.body):
            log.debug("event=late_reply correlation_id=%s", correlation_id)

    async def _reply_address(self, timeout: float | None) -> tuple[str, int]:
        await self._wait_ready(timeout)
        self._reply_wanted = True
        if self._reply_queue is None:
            async with self._reply_lock:
                if self._reply_queue is None:
                    await self._wait_ready(timeout)
                    await self._create_reply_queue()
        assert self._reply_queue is not None
        return self._reply_queue, self._generation

    async def request(self, routing_key: str, body: bytes, *, timeout: float | None,
                      exchange: str | None = None) -> bytes:
        """As Spring AMQP's RabbitTemplate with direct reply-to (the Java NFVO): a channel of the request's
        own consumes ``amq.rabbitmq.reply-to`` and publishes the request with that ``reply_to`` and no
        correlation id; the first message on the channel is the answer. The channel closes afterwards, so
        a late or repeated answer reaches nobody (the broker drops it). A lost connection or a closed
        channel fails the request with TransportError."""
        self._check_size(body)
        loop = asyncio.get_running_loop()
        name = self.exchange if exchange is None else exchange
        key = f"request:{uuid.uuid4().hex}"     # in _pending only so that a lost connection fails it
        answer: asyncio.Future[bytes] = loop.create_future()
        ch: AbstractChannel | None = None

        def on_answer(incoming: DeliveredMessage) -> None:
            if not answer.done():
                answer.set_result(incoming.body)

        async def closed(_sender: Any, exc: BaseException | None) -> None:
            if not answer.done():
                why = _describe(exc) if exc else "closed"
                answer.set_exception(TransportError(f"the request channel closed: {why}"))

        try:
            async with asyncio.timeout(timeout):
                conn = await self._wait_ready(timeout)
                self._pending.add(key, answer)
                try:
                    with _as_transport_error(f"cannot send a request to {routing_key!r} on exchange {name!r}"):
                        ch = await conn.channel(publisher_confirms=True)
                        ch.close_callbacks.add(closed)
                        underlay = await ch.get_underlay_channel()
                        await underlay.basic_consume(DIRECT_REPLY_TO, on_answer, no_ack=True)  # type: ignore[arg-type]
                        properties = aiormq.spec.Basic.Properties(content_type="text/plain", delivery_mode=_PERSISTENT,
                                                                  reply_to=DIRECT_REPLY_TO)
                        await underlay.basic_publish(body, exchange=name, routing_key=routing_key,
                                                     properties=properties, timeout=self.publish_timeout)
                    return await answer
                finally:
                    self._pending.forget(key, answer)
                    if ch is not None:
                        ch.close_callbacks.discard(closed)
                        self._spawn(self._close_channel(ch))     # never delays a cancellation
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s") from exc

    async def _send_request(self, routing_key: str, body: bytes, *, exchange: str | None, reply_to: str,
                            correlation_id: str, generation: int) -> None:
        await self._publish(routing_key, body, exchange=exchange, reply_to=reply_to,
                            correlation_id=correlation_id, headers=None, generation=generation)
