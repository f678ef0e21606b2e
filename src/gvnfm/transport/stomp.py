"""The STOMP transport (stomp.py, STOMP 1.2) for RabbitMQ's STOMP plugin and for ActiveMQ, with the
semantics documented in ``transport.base``; destinations per broker in ``transport.stomp_destinations``.

URL: ``stomp://user:pass@host:61613/[vhost]`` or ``stomp+ssl://...`` (the vhost is the ``host`` header
of CONNECT: RabbitMQ's virtual host, ``/`` when absent). ``?dialect=rabbitmq|activemq`` overrides the
broker kind read from the ``server`` header of CONNECTED.

TLS (``stomp+ssl://``), with aiormq's ``amqps://`` names: ``cafile`` (PEM: the CAs that may sign the
broker's certificate; absent: the system's CAs), ``certfile`` and ``keyfile`` (a client certificate; the
key in ``certfile`` when ``keyfile`` is absent; not encrypted). The certificate and the host name
(or IP address) of the URL are always checked (``ssl.PROTOCOL_TLS_CLIENT``); there is no way to turn
that off. Any other parameter, a TLS parameter on ``stomp://``, or a file that is missing or does not
load is a ``TransportError`` when the URL is parsed. A broker certificate that fails verification, or
a client certificate the broker refuses, fails ``connect()`` at once (:class:`ConnectRefused`, naming
OpenSSL's reason): retrying cannot cure it. stomp.py keeps that reason to its log: it is read from the
error that ended the connection's reader (a TLS 1.3 alert after the handshake, kept by
:func:`gvnfm.transport.stomp_mends.read_error`), else found again by one handshake of our own
(:func:`gvnfm.transport.tls.handshake_failure`), on that failure path only. stomp.py 9.0 does not
see a TLS connection close (its reader spins), and logs CONNECT's passcode at DEBUG: both are mended
in :mod:`gvnfm.transport.stomp_mends`.

Threads: stomp.py reads the socket on a thread of its own. Every frame it hands over is passed to the
event loop with ``loop.call_soon_threadsafe`` (tagged with the connection's generation, so a frame of a
connection that is gone is ignored); every frame sent goes through one single-thread executor per
transport, so frames leave in the order they were sent, and the loop never blocks on the socket.

Guarantees:
- ``publish`` returns once the broker answered the SEND's ``receipt`` (RabbitMQ sends it after its
  publisher confirm: the STOMP equivalent of the AMQP transport's confirms); messages are persistent.
- Consumers ack (``client-individual``) after the handler; a message that arrives for a cancelled
  subscription is left unsettled (RabbitMQ refuses a NACK without its subscription) and comes back when
  the subscription (ActiveMQ) or the connection (RabbitMQ) closes; so does every unacked message.
- Header values travel as text (STOMP headers are strings).
- An ERROR frame fails the operation it names (``receipt-id``), or every operation waiting, with the
  broker's message; the connection is then dropped and re-established (STOMP closes after ERROR).
- Reconnection as in the AMQP transport (``transport.lifecycle``): back-off doubling from
  ``reconnect_initial`` up to ``reconnect_max``; queues, bindings, consumers re-made, then the
  ``on_reconnect`` callbacks; RPCs waiting fail at once with ``TransportError("connection lost")``; the
  passcode is never logged. Operations wait for the restore (at most ``connect_timeout``), as on AMQP:
  one that ran beside it could find a queue not made again yet (a consume refused NOT_FOUND). If the
  restore fails, that connection is lost as any other (one path, ``_on_lost``): nothing of it is kept
  (reply address, subscriptions), what waits on it fails.
- A reply is sent once per ``reply()`` call: nothing here re-sends a SEND (a SEND whose receipt was lost
  with the connection raises ``TransportError``; the caller decides).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import stomp
import stomp.exception

from gvnfm.transport import tls as tls_files
from gvnfm.transport.base import (
    DEFAULT_EXCHANGE,
    Delivery,
    Handler,
    Message,
    QueueSpec,
    Restored,
    Subscription,
    TransportError,
)
from gvnfm.transport.lifecycle import ConnectRefused, ConsumerEntry, ReconnectingTransport, run_handler, safe_url
from gvnfm.transport.stomp_destinations import (
    FRAME_HEADERS,
    Dialect,
    Subscribe,
    consume_subscriptions,
    declare_subscriptions,
    publish_destination,
    reply_destination,
    reply_to_of,
    routing_key_of,
)
from gvnfm.transport.stomp_mends import end_on_tls_close, read_error

log = logging.getLogger(__name__)

DEFAULT_PORT = 61613
#: ActiveMQ: the header of a message requeued as a copy (``Message.redelivered`` on its next delivery).
REDELIVERED_HEADER = "gvnfm-redelivered"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_RPC_TEMP = "gvnfm-rpc"
#: Queues a reconnection restores at once (their SUBSCRIBEs pipelined on the connection).
RESTORE_IN_FLIGHT = 32



def _no_user_ids(user: str | None) -> None:
    """Host users (a broker user per VM, checked through AMQP ``user_id``) exist only on an AMQP EMS
    broker (``vnfm.broker_users``): over STOMP the VNFM never asks for them."""
    if user is not None:
        raise TransportError("per-host broker users (user_id) are not supported over STOMP")

class _FatalConnectError(TransportError):
    """The broker answered CONNECT with ERROR (credentials, virtual host): retrying does not help."""


#: The query parameters of a STOMP URL.
_PARAMETERS = ("dialect", *tls_files.TLS_PARAMETERS)


class _CertificateRefused(_FatalConnectError):
    """A TLS certificate problem: the broker's failed verification (unknown CA, another host name), or
    the broker refused this client's. Retrying does not help either."""


@dataclass(frozen=True)
class StompAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    vhost: str
    ssl: bool
    dialect: Dialect | None
    #: TLS: the CA file, the client certificate and its key (absolute paths), or None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @classmethod
    def parse(cls, url: str) -> StompAddress:
        def invalid(why: str) -> TransportError:
            return TransportError(f"invalid broker URL {safe_url(url)}: {why}")

        try:
            parts = urlsplit(url)
            port = parts.port
        except (TypeError, ValueError) as exc:
            raise invalid(str(exc)) from exc
        if parts.scheme not in ("stomp", "stomp+ssl"):
            raise invalid("not stomp:// or stomp+ssl://")
        query = parse_qs(parts.query, keep_blank_values=True)
        for key, values in query.items():
            if key == "no_verify_ssl":
                raise invalid("no_verify_ssl is not supported: the broker's certificate is always verified "
                              "(a private CA is given with cafile=)")
            if key not in _PARAMETERS:
                known = _PARAMETERS if parts.scheme == "stomp+ssl" else ("dialect",)
                raise invalid(f"unknown parameter {key!r} (known: {', '.join(known)})")
            if len(values) > 1:
                raise invalid(f"parameter {key!r} given {len(values)} times")
            if not values[0]:
                raise invalid(f"parameter {key!r} is empty")
        tls = {key: os.path.abspath(query[key][0]) for key in tls_files.TLS_PARAMETERS if key in query}
        if tls and parts.scheme != "stomp+ssl":
            raise invalid(f"{', '.join(tls)} need stomp+ssl:// (TLS)")
        try:
            tls_files.check_files(tls.get("cafile"), tls.get("certfile"), tls.get("keyfile"))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        dialect = None
        if "dialect" in query:
            try:
                dialect = Dialect(query["dialect"][-1].lower())
            except ValueError:
                raise invalid("dialect is rabbitmq or activemq") from None
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        return cls(host=parts.hostname or "localhost", port=port or DEFAULT_PORT,
                   username=unquote(parts.username) if parts.username is not None else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   vhost=path or "/", ssl=parts.scheme != "stomp", dialect=dialect,
                   cafile=tls.get("cafile"), certfile=tls.get("certfile"), keyfile=tls.get("keyfile"))


class _Listener(stomp.ConnectionListener):
    """stomp.py's callbacks (its reader thread) handed to the event loop."""

    def __init__(self, transport: StompTransport, generation: int, loop: asyncio.AbstractEventLoop) -> None:
        self._t, self._gen, self._loop = transport, generation, loop

    def _post(self, kind: str, frame: Any = None) -> None:
        with contextlib.suppress(RuntimeError):   # the loop is closed: nobody listens any more
            self._loop.call_soon_threadsafe(self._t._on_frame, self._gen, kind, frame)

    def on_connected(self, frame: Any) -> None:
        self._post("CONNECTED", frame)

    def on_message(self, frame: Any) -> None:
        self._post("MESSAGE", frame)

    def on_receipt(self, frame: Any) -> None:
        self._post("RECEIPT", frame)

    def on_error(self, frame: Any) -> None:
        self._post("ERROR", frame)

    def on_disconnected(self) -> None:
        self._post("DISCONNECTED")

    def on_heartbeat_timeout(self) -> None:
        self._post("HEARTBEAT_TIMEOUT")


def _error_text(frame: Any) -> str:
    message = str(frame.headers.get("message", "ERROR"))
    body = frame.body.decode("utf-8", "replace") if isinstance(frame.body, bytes) else str(frame.body or "")
    body = body.strip()
    return f"{message}: {body[:500]}" if body and body != message else message


@dataclass(eq=False)
class _Consumer(ConsumerEntry):
    sub_ids: list[str] = field(default_factory=list)
    semaphore: asyncio.Semaphore | None = None


@dataclass(eq=False)
class _Holder:
    """RabbitMQ, an auto-delete or exclusive queue: its declaring subscription (prefetch 1), kept until a
    consumer of the queue comes on this connection, which adopts it with what it received meanwhile.
    Cancelling it instead would delete the queue, and strand a message delivered to it (RabbitMQ
    refuses a NACK once its subscription is gone). A connection that declares such a queue and never
    consumes it holds at most one message of it (gvnfm always consumes the auto-delete queues it
    declares; other queues are declared on a throw-away connection)."""

    queue: str
    sub_id: str
    held: list[tuple[int, Any]] = field(default_factory=list)


class _StompDelivery(Delivery):
    def __init__(self, transport: StompTransport, message: Message, ack_id: str, generation: int,
                 queue_destination: str | None = None) -> None:
        self.message = message
        self._t = transport
        self._ack_id = ack_id
        self._generation = generation
        self._settled = False
        #: the queue it was consumed from (ActiveMQ: a requeue is a copy sent there, then the ACK)
        self.queue_destination = queue_destination

    async def ack(self) -> None:
        if self._settled:
            return
        self._settled = True
        await self._t._settle("ACK", self._ack_id, self._generation)

    async def reject(self, requeue: bool = False) -> None:
        if self._settled:
            return
        self._settled = True
        if requeue and self._t.dialect is Dialect.ACTIVEMQ and self.queue_destination:
            await self._t._requeue_copy(self)
            return
        await self._t._settle("NACK", self._ack_id, self._generation, requeue=requeue)


class _StompSubscription(Subscription):
    def __init__(self, transport: StompTransport, consumer: _Consumer) -> None:
        self._t, self._consumer = transport, consumer

    async def cancel(self) -> None:
        await self._t._cancel_consumer(self._consumer)


class StompTransport(ReconnectingTransport[stomp.Connection12, _Consumer]):
    _kind = "stomp"
    _log = log

    def __init__(self, url: str, *, exchange: str = DEFAULT_EXCHANGE, reconnect_initial: float = 0.5,
                 reconnect_max: float = 10.0, heartbeat: float = 10.0, connect_timeout: float = 10,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, publish_timeout: float = 30.0) -> None:
        super().__init__(url, exchange=exchange, reconnect_initial=reconnect_initial, reconnect_max=reconnect_max,
                         connect_timeout=connect_timeout, max_message_bytes=max_message_bytes,
                         publish_timeout=publish_timeout)
        self.heartbeat = heartbeat
        #: The broker kind (from CONNECTED, or the URL's ``dialect``).
        self.dialect: Dialect = Dialect.RABBITMQ
        #: The ``server`` header of the last CONNECTED.
        self.server: str | None = None

        self._io = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gvnfm-stomp")
        self._address: StompAddress | None = None
        self._closing = False
        #: The connection is up (``_ready``: up and restored, what operations wait for).
        self._live = False
        self._connected_fut: asyncio.Future[Any] | None = None
        self._receipts: dict[str, asyncio.Future[None]] = {}

        self._bindings: dict[str, list[str]] = {}
        self._subs: dict[str, _Consumer | _Holder] = {}
        self._holders: dict[str, list[_Holder]] = {}
        self._sub_destinations: dict[str, str] = {}
        self._next_id = 0

        self._reply_to: str | None = None
        self._reply_sub: str | None = None
        #: Probes in flight (``_queue_exists``), by queue: callers asking at once share one.
        self._probes: dict[str, asyncio.Task[bool]] = {}

    # -- the bridge to stomp.py's thread ------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}-{self._next_id}"

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, lambda: fn(*args, **kwargs))

    async def _send_frame(self, cmd: str, headers: dict[str, str], body: bytes = b"", *,
                          receipt: bool = True, what: str = "") -> None:
        """Send one frame on the live connection; with ``receipt``, wait for the broker's RECEIPT."""
        conn, generation = self._conn, self._generation
        if conn is None:
            raise TransportError("connection lost")
        rid = None
        fut: asyncio.Future[None] | None = None
        if receipt:
            rid = self._id("r")
            headers = {**headers, "receipt": rid}
            fut = asyncio.get_running_loop().create_future()
            self._receipts[rid] = fut
        try:
            try:
                await self._call(conn.send_frame, cmd, headers, body)
            except (stomp.exception.StompException, OSError) as exc:
                raise TransportError(f"{what or cmd}: connection lost ({type(exc).__name__})") from exc
            if fut is None and generation != self._generation:
                raise TransportError(f"{what or cmd}: connection lost")
            if fut is not None:
                try:
                    async with asyncio.timeout(self.publish_timeout):
                        await fut
                except TimeoutError:
                    raise TransportError(f"{what or cmd}: no receipt from the broker within "
                                         f"{self.publish_timeout:g} s") from None
                except TransportError as exc:
                    raise TransportError(f"{what or cmd}: {exc}") from None
        finally:
            if rid is not None:
                self._receipts.pop(rid, None)

    def _on_frame(self, generation: int, kind: str, frame: Any) -> None:
        if generation != self._generation:
            return
        if kind == "CONNECTED":
            if self._connected_fut is not None and not self._connected_fut.done():
                self._connected_fut.set_result(frame)
        elif kind == "MESSAGE":
            self._on_message(generation, frame)
        elif kind == "RECEIPT":
            fut = self._receipts.get(str(frame.headers.get("receipt-id", "")))
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == "ERROR":
            self._on_error(frame)
        elif kind in ("DISCONNECTED", "HEARTBEAT_TIMEOUT"):
            if self._connected_fut is not None and not self._connected_fut.done():
                # closed while connecting (no ERROR frame): this attempt fails now, not at its deadline
                self._connected_fut.set_exception(TransportError("the broker closed the connection before CONNECTED"))
                return
            self._on_lost("heartbeat timeout" if kind == "HEARTBEAT_TIMEOUT" else "disconnected")

    def _on_error(self, frame: Any) -> None:
        text = _error_text(frame)
        if self._connected_fut is not None and not self._connected_fut.done():
            self._connected_fut.set_exception(_FatalConnectError(text))
            return
        log.log(logging.DEBUG if self._closing else logging.WARNING, "event=stomp_error url=%s error=%r",
                safe_url(self.url), text)
        rid = frame.headers.get("receipt-id")
        targets = [self._receipts[rid]] if rid in self._receipts else list(self._receipts.values())
        for fut in targets:
            if not fut.done():
                fut.set_exception(TransportError(text))
        # STOMP: the broker closes the connection after an ERROR; make sure of it, and come back.
        self._on_lost(f"ERROR frame: {text}")

    def _on_lost(self, why: str, *, restoring: bool = False) -> None:
        """The one path of a lost connection: a frame said so (DISCONNECTED, heartbeat timeout, ERROR),
        or ``restoring``: re-making the queues and consumers on a new connection failed (the reconnect
        loop that was restoring goes on). Everything of the connection is forgotten: receipts and RPCs
        waiting fail with "connection lost", subscriptions and the reply address go."""
        if not self._started or self._closing or not self._live:
            return
        self._live = False
        self._ready.clear()
        self._generation += 1
        conn, self._conn = self._conn, None
        if restoring:
            log.info("event=stomp_restore_failed url=%s reason=%r", safe_url(self.url), why)
        else:
            log.warning("event=stomp_connection_lost url=%s reason=%r", safe_url(self.url), why)
        error = TransportError("connection lost")
        for fut in list(self._receipts.values()):
            if not fut.done():
                fut.set_exception(error)
        self._pending.fail_all(error)
        self._subs.clear()
        self._sub_destinations.clear()
        self._holders.clear()
        self._reply_to = self._reply_sub = None
        for consumer in self._consumers:
            consumer.sub_ids = []
        if conn is not None:
            self._io.submit(self._disconnect_quietly, conn)
        if not restoring:
            self._start_reconnecting()

    @staticmethod
    def _disconnect_quietly(conn: stomp.Connection12, graceful: bool = False) -> None:
        """Close the socket (the reader thread ends with it); ``graceful``: say DISCONNECT first."""
        if graceful:
            with contextlib.suppress(Exception):
                conn.disconnect()
        with contextlib.suppress(Exception):
            conn.transport.disconnect_socket()

    # -- connection ---------------------------------------------------------------------------------
    async def connect(self) -> None:
        async with self._connect_lock:
            if self._started:
                return
            self._address = StompAddress.parse(self.url)
            await self._connect_retrying()
            self._started = True
            self._closing = False
            self._live = True
            self._ready.set()
            log.info("event=stomp_connected url=%s server=%s dialect=%s exchange=%s", safe_url(self.url),
                     self.server, self.dialect, self.exchange)

    async def _attempt(self, timeout: float) -> None:
        assert self._address is not None
        try:
            await self._open(self._address, timeout)
        except _CertificateRefused as exc:
            raise ConnectRefused(f"cannot connect to {safe_url(self.url)}: {exc}") from exc
        except _FatalConnectError as exc:
            raise ConnectRefused(f"the broker at {safe_url(self.url)} refused the connection: {exc}") from exc

    async def _open(self, address: StompAddress, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._generation += 1
        generation = self._generation
        hb = int(self.heartbeat * 1000)
        conn = stomp.Connection12([(address.host, address.port)], vhost=address.vhost, auto_decode=False,
                                  reconnect_attempts_max=1, heartbeats=(hb, hb), try_loopback_connect=False,
                                  timeout=max(1.0, timeout))
        if address.ssl:
            # verify=True and PROTOCOL_TLS_CLIENT (the certificate and the host name checked) are stomp.py
            # 9's defaults, said here so that no default decides; stomp.py < 9 verified nothing without
            # ca_certs (and has no verify=: it fails here rather than connect unverified).
            conn.set_ssl(for_hosts=[(address.host, address.port)], ca_certs=address.cafile,
                         cert_file=address.certfile, key_file=address.keyfile, ssl_version=ssl.PROTOCOL_TLS_CLIENT,
                         verify=True)
            end_on_tls_close(conn.transport)
        conn.set_listener("gvnfm", _Listener(self, generation, loop))
        self._connected_fut = connected = loop.create_future()
        try:
            try:
                await self._call(conn.connect, address.username, address.password, wait=False,
                                 with_connect_command=True)
            except (stomp.exception.StompException, OSError) as exc:
                why = str(exc) or type(exc).__name__
                if address.ssl:   # stomp.py logged why and raised: the reader's error, or ask again
                    why = await self._tls_diagnosis(address, timeout, why, conn.transport, listen=0.5)
                raise TransportError(why) from exc
            try:
                async with asyncio.timeout(timeout):
                    frame = await connected
            except TimeoutError:
                raise TransportError("no CONNECTED frame (is it a STOMP port?)") from None
            except _FatalConnectError:
                raise
            except TransportError as exc:   # closed before CONNECTED
                if address.ssl:
                    raise TransportError(await self._tls_diagnosis(address, timeout, str(exc), conn.transport,
                                                                   listen=0.5)) from None
                raise
        except BaseException:
            self._generation += 1
            self._io.submit(self._disconnect_quietly, conn)
            raise
        finally:
            self._connected_fut = None
            if connected.done() and not connected.cancelled():
                connected.exception()   # seen: a close while CONNECT was sent already failed this attempt
        self.server = str(frame.headers.get("server") or "") or None
        self.dialect = address.dialect or Dialect.from_server(self.server)
        self._conn = conn
        if self.dialect is Dialect.RABBITMQ:
            await self._check_exchange(address)

    async def _tls_diagnosis(self, address: StompAddress, timeout: float, why: str, transport: Any, *,
                             listen: float = 0.0) -> str:
        """``why`` a TLS connection attempt failed, with the reason OpenSSL gave: first the error that
        ended stomp.py's reader on ``transport`` (over TLS 1.3 the broker's refusal of a client certificate
        is an alert read after the handshake), else one handshake of our own. A certificate problem
        raises :class:`_CertificateRefused`."""
        failure: BaseException | None = read_error(transport)
        if tls_files.certificate_problem(failure) is None:
            try:   # the context stomp.py makes of set_ssl(ca_certs=, cert_file=, key_file=, PROTOCOL_TLS_CLIENT)
                context = tls_files.client_context(address.cafile, address.certfile, address.keyfile)
            except (ValueError, OSError):   # (refused when the URL was parsed; the file changed since)
                return why
            failure = await self._call(tls_files.handshake_failure, address.host, address.port, context,
                                       max(1.0, timeout), listen=listen)
        refusal = tls_files.certificate_problem(failure, cafile=address.cafile, certfile=address.certfile)
        if refusal is not None:
            raise _CertificateRefused(f"{refusal} (host {address.host})")
        return why if failure is None else f"{why}: {failure}"

    async def _check_exchange(self, address: StompAddress) -> None:
        """STOMP cannot declare an exchange: say so at once when the topic exchange is missing."""
        headers = {"id": "exchange-check", "destination": f"/exchange/{self.exchange}/gvnfm.exchange-check",
                   "ack": "auto"}
        try:
            await self._send_frame("SUBSCRIBE", headers, what="checking the exchange")
            await self._send_frame("UNSUBSCRIBE", {"id": "exchange-check"}, what="checking the exchange")
        except TransportError as exc:
            conn, self._conn = self._conn, None
            self._generation += 1
            if conn is not None:
                self._io.submit(self._disconnect_quietly, conn)
            if "no exchange" in str(exc):
                raise _FatalConnectError(
                    f"no exchange {self.exchange!r} in virtual host {address.vhost!r}; STOMP cannot declare one: "
                    "the NFVO (or any AMQP peer) declares it, or the operator does (topic, durable)") from None
            raise

    def _may_reconnect(self) -> bool:
        return self._started and not self._closing

    async def _reopen(self) -> None:
        assert self._address is not None
        await self._open(self._address, timeout=self.connect_timeout)
        self._live = True
        await self._restore()
        self._ready.set()

    def _reopen_failed(self, exc: BaseException, attempt: int, delay: float) -> bool:
        log.info("event=stomp_reconnect_retry url=%s error=%r", safe_url(self.url), str(exc))
        if self._reconnect_task is not asyncio.current_task():
            return False        # the connection was lost again meanwhile: a new loop took over
        if self._conn is not None:
            self._on_lost(str(exc), restoring=True)
        return True

    def _reopened(self, attempt: int) -> None:
        log.info("event=stomp_reconnected url=%s reconnects=%d", safe_url(self.url), self.reconnects)

    async def _restore(self) -> None:
        """On a new connection: every queue declared made again with its bindings, then its active consumers
        started; up to ``RESTORE_IN_FLIGHT`` queues at once, their frames pipelined on the one connection
        (each queue's in order: a consumer adopts the declaring subscriptions of its queue). One after the
        other, each frame waited for its receipt: 1,000 agents' queues took 4.0-5.4 s (docs/performance.md,
        thirteenth round). The first failure ends the restore (the others are cancelled) with that
        failure: the reconnect loop then drops this connection and tries again, as before."""
        consumers: dict[str, list[_Consumer]] = {}
        for consumer in self._consumers:
            if consumer.active:
                consumers.setdefault(consumer.queue, []).append(consumer)
        order = [*self._queues, *(q for q in consumers if q not in self._queues)]
        queues = iter(order)

        async def restore_next() -> None:
            for queue in queues:
                spec = self._queues.get(queue)
                if spec is not None:
                    await self._declare(queue, spec, self._bindings.get(queue, []))
                for consumer in consumers.get(queue, []):
                    if consumer.active:
                        await self._start_consumer(consumer)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(RESTORE_IN_FLIGHT, len(order))):
                    group.create_task(restore_next())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def close(self) -> None:
        if self._started:
            self._closing = True
        await super().close()

    async def _disconnect(self) -> None:
        self._generation += 1
        self._live = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._call(self._disconnect_quietly, conn, True)
        self._bindings.clear()
        self._subs.clear()
        self._sub_destinations.clear()
        self._holders.clear()
        self._reply_to = self._reply_sub = None
        self._io.shutdown(wait=False)
        self._io = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gvnfm-stomp")

    def _forget_queue(self, queue: str) -> None:
        super()._forget_queue(queue)
        self._bindings.pop(queue, None)

    # -- declarations ---------------------------------------------------------------------------------
    async def declare_queue(self, name: str, *, durable: bool = False, auto_delete: bool = False,
                            exclusive: bool = False, bind: bool = True) -> None:
        await self._wait_ready()
        spec = QueueSpec(durable=durable, auto_delete=auto_delete, exclusive=exclusive)
        keys = [name] if bind else []
        for key in self._bindings.get(name, []):
            if key not in keys:
                keys.append(key)
        await self._declare(name, spec, keys)
        self._queues[name] = spec
        self._bindings[name] = keys

    async def bind(self, queue: str, routing_key: str) -> None:
        await self._wait_ready()
        spec = self._queues.get(queue)
        if spec is None:
            raise TransportError(f"cannot bind {queue!r} to {routing_key!r}: NOT_FOUND - no queue {queue!r} "
                                 "declared on this connection (STOMP has no passive declaration)")
        keys = self._bindings.setdefault(queue, [])
        if routing_key in keys:
            return
        await self._declare(queue, spec, [routing_key])
        keys.append(routing_key)

    async def _declare(self, queue: str, spec: QueueSpec, keys: list[str]) -> None:
        subs = declare_subscriptions(self.dialect, self.exchange, queue, spec, keys)
        if self.dialect is Dialect.RABBITMQ and not (spec.auto_delete or spec.exclusive):
            # A queue that outlives its subscriptions is declared on a throw-away connection: a message
            # its declaring subscription is handed goes back to the queue when that connection closes.
            side = await self._side_connection()
            try:
                for sub in subs:
                    await side._send_frame("SUBSCRIBE", {**sub.headers, "id": side._id("d"), "ack": "client-individual",
                                                         "destination": sub.destination, "prefetch-count": "1"},
                                           what=f"cannot declare queue {queue!r}")
            finally:
                await side.close()
            return
        hold = self.dialect is Dialect.RABBITMQ
        for sub in subs:
            sub_id = self._id("d")
            headers = {**sub.headers, "id": sub_id, "destination": sub.destination, "ack": "client-individual"}
            if hold:
                headers["prefetch-count"] = "1"
                holder = _Holder(queue=queue, sub_id=sub_id)
                self._subs[sub_id] = holder
                self._holders.setdefault(queue, []).append(holder)
            else:   # ActiveMQ: a closed subscription's unacked messages go back to the queue at once
                headers["activemq.prefetchSize"] = "1"
            await self._send_frame("SUBSCRIBE", headers, what=f"cannot declare queue {queue!r}")
            if not hold:
                await self._send_frame("UNSUBSCRIBE", {"id": sub_id}, what=f"cannot declare queue {queue!r}")
        consumer = next((c for c in self._consumers if c.queue == queue and c.active and c.sub_ids), None)
        if consumer is not None:
            self._adopt_holders(consumer)

    def _adopt_holders(self, consumer: _Consumer) -> None:
        """The consumer takes the queue's declaring subscriptions over, and what they were given."""
        for holder in self._holders.pop(consumer.queue, []):
            self._subs[holder.sub_id] = consumer
            consumer.sub_ids.append(holder.sub_id)
            for generation, frame in holder.held:
                self._on_message(generation, frame)

    # -- publishing -------------------------------------------------------------------------------------
    def _check_size(self, body: bytes) -> None:
        if len(body) > self.max_message_bytes:
            raise TransportError(f"message of {len(body)} bytes exceeds the limit of {self.max_message_bytes} bytes")

    async def publish(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                      reply_to: str | None = None, correlation_id: str | None = None,
                      headers: dict[str, Any] | None = None, user_id: str | None = None) -> None:
        _no_user_ids(user_id)
        self._check_size(body)
        await self._wait_ready()
        name = self.exchange if exchange is None else exchange
        await self._publish(publish_destination(self.dialect, name, routing_key), body, reply_to=reply_to,
                            correlation_id=correlation_id, headers=headers,
                            what=f"cannot publish {routing_key!r} to exchange {name!r}")

    async def _publish(self, destination: str, body: bytes, *, reply_to: str | None, correlation_id: str | None,
                       headers: dict[str, Any] | None, what: str, generation: int | None = None) -> None:
        frame: dict[str, str] = {}
        for key, value in (headers or {}).items():
            if key in FRAME_HEADERS or not isinstance(key, str):
                raise TransportError(f"{what}: header {key!r} is reserved by STOMP")
            frame[key] = value if isinstance(value, str) else str(value)
        frame.update({"destination": destination, "content-type": "text/plain", "persistent": "true"})
        if reply_to:
            frame["reply-to"] = reply_to
        if correlation_id:
            frame["correlation-id"] = correlation_id
        if generation is not None and generation != self._generation:
            raise TransportError("connection lost")
        await self._send_frame("SEND", frame, body, what=what)

    async def publish_routed(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                             user_id: str | None = None) -> bool:
        """On the default exchange of RabbitMQ: whether the queue exists (a SUBSCRIBE on a throw-away
        connection: an ERROR there disturbs nothing), then publish. STOMP cannot tell whether a key is
        bound on the topic exchange, and ActiveMQ makes a queue on the first SEND: both publish and
        answer True (the message waits in the queue)."""
        _no_user_ids(user_id)
        self._check_size(body)
        await self._wait_ready()
        name = self.exchange if exchange is None else exchange
        if name == "" and self.dialect is Dialect.RABBITMQ and not await self._queue_exists(routing_key):
            return False
        await self.publish(routing_key, body, exchange=exchange)
        return True

    async def _side_connection(self) -> StompTransport:
        """A throw-away connection to the same broker (its ERRORs disturb nothing, and are not retried)."""
        side = StompTransport(self.url, exchange=self.exchange, connect_timeout=self.connect_timeout,
                              heartbeat=0, publish_timeout=self.publish_timeout)
        await side.connect()
        side._closing = True
        return side

    async def _queue_exists(self, queue: str) -> bool:
        """Whether ``queue`` exists: a SUBSCRIBE on a throw-away connection. Callers that ask about a queue
        while a probe of it is in flight share that probe (a caller's cancellation does not cancel it): the
        answer is then at most one probe older than the question, and the check is racy in any case (the
        queue may go between it and the SEND). A fleet's agents register at once after a reconnection: a
        connection each took a thousand sockets at once, past RabbitMQ's default limit of 1,024 file
        descriptors (docs/performance.md, thirteenth round)."""
        probe = self._probes.get(queue)
        if probe is None:
            probe = self._probes[queue] = asyncio.create_task(self._probe(queue))
            probe.add_done_callback(functools.partial(self._probe_done, queue))
        return await asyncio.shield(probe)

    def _probe_done(self, queue: str, probe: asyncio.Task[bool]) -> None:
        if self._probes.get(queue) is probe:
            del self._probes[queue]
        if not probe.cancelled():
            probe.exception()   # retrieved here: every caller may have gone

    async def _probe(self, queue: str) -> bool:
        probe = await self._side_connection()
        try:
            await probe._send_frame("SUBSCRIBE", {"id": "probe", "destination": f"/amq/queue/{queue}",
                                                  "ack": "client-individual", "prefetch-count": "1"},
                                    what=f"checking queue {queue!r}")
            return True
        except TransportError as exc:
            if "not_found" in str(exc).lower():
                return False
            raise
        finally:
            await probe.close()

    # -- consuming ----------------------------------------------------------------------------------------
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 0,
                      on_restored: Restored | None = None) -> Subscription:
        await self._wait_ready()
        consumer = _Consumer(queue=queue, handler=handler, prefetch=max(0, prefetch))
        if consumer.prefetch:
            consumer.semaphore = asyncio.Semaphore(consumer.prefetch)
        await self._start_consumer(consumer)
        self._consumers.append(consumer)
        return _StompSubscription(self, consumer)

    async def _start_consumer(self, consumer: _Consumer) -> None:
        queue = consumer.queue
        keys = self._bindings.get(queue, [queue] if queue not in self._queues else [])
        subs: list[Subscribe] = consume_subscriptions(self.dialect, queue, self._queues.get(queue), keys,
                                                      consumer.prefetch)
        consumer.sub_ids = []
        for sub in subs:
            sub_id = self._id("c")
            self._subs[sub_id] = consumer
            self._sub_destinations[sub_id] = sub.destination
            consumer.sub_ids.append(sub_id)
            await self._send_frame("SUBSCRIBE", {**sub.headers, "id": sub_id, "destination": sub.destination,
                                                 "ack": "client-individual"},
                                   what=f"cannot consume from {queue!r}")
        self._adopt_holders(consumer)

    def _on_message(self, generation: int, frame: Any) -> None:
        headers = frame.headers
        sub_id = str(headers.get("subscription", ""))
        body = frame.body if isinstance(frame.body, bytes) else str(frame.body or "").encode()
        if sub_id == self._reply_sub or (self._reply_sub is None and sub_id.startswith("/temp-queue/")):
            self._on_reply(headers, body)
            return
        ack_id = str(headers.get("ack") or headers.get("message-id") or "")
        owner = self._subs.get(sub_id)
        if isinstance(owner, _Holder):
            owner.held.append((generation, frame))
            return
        if owner is None or not owner.active or not self._started:
            # Its subscription is (being) cancelled: not handled, not settled (a NACK for a cancelled
            # subscription is an ERROR on RabbitMQ). It goes back to the queue when the subscription
            # (ActiveMQ) or the connection (RabbitMQ) closes.
            log.debug("event=stomp_message_for_cancelled_subscription subscription=%s", sub_id)
            return
        message = Message(body=body, routing_key=routing_key_of(str(headers.get("destination", ""))),
                          reply_to=reply_to_of(headers.get("reply-to")),
                          correlation_id=headers.get("correlation-id") or None,
                          content_type=str(headers.get("content-type") or "text/plain").split(";")[0],
                          redelivered=(str(headers.get("redelivered", "false")).lower() == "true"
                                       or headers.get(REDELIVERED_HEADER) == "true"),
                          headers={k: v for k, v in headers.items()
                                   if k not in FRAME_HEADERS and k != REDELIVERED_HEADER})
        queue_destination = self._sub_destinations.get(sub_id)
        delivery = _StompDelivery(self, message, ack_id, generation,
                                  queue_destination if queue_destination and queue_destination.startswith("/queue/")
                                  else None)
        self._spawn(self._run(owner, delivery), owner)

    @staticmethod
    async def _run(consumer: _Consumer, delivery: _StompDelivery) -> None:
        async with consumer.semaphore or contextlib.nullcontext():
            await run_handler(consumer.queue, consumer.handler, delivery)

    async def _settle(self, cmd: str, ack_id: str, generation: int, *, requeue: bool = True) -> None:
        """ACK/NACK (no receipt: like the AMQP transport's acks, queued for the socket; if the connection
        dies first, the broker redelivers)."""
        if generation != self._generation or self._conn is None or not ack_id:
            return
        headers = {"id": ack_id}
        if cmd == "NACK" and self.dialect is Dialect.RABBITMQ:
            headers["requeue"] = "true" if requeue else "false"
        try:
            await self._send_frame(cmd, headers, receipt=False)
        except TransportError as exc:
            log.debug("%s not sent: %s", cmd, exc)

    async def _requeue_copy(self, delivery: _StompDelivery) -> None:
        """ActiveMQ's NACK is final (its dead letter queue): a requeue is a copy sent to the same queue
        (confirmed by its receipt), marked redelivered, and only then the ACK of the original."""
        m, destination = delivery.message, delivery.queue_destination
        assert destination is not None
        try:
            await self._publish(destination, m.body, reply_to=m.reply_to, correlation_id=m.correlation_id,
                                headers={**m.headers, REDELIVERED_HEADER: "true"}, what=f"requeue to {destination}")
        except TransportError as exc:   # not copied: unacked, it comes back with the connection
            log.warning("event=stomp_requeue_failed destination=%s error=%r", destination, str(exc))
            return
        await self._settle("ACK", delivery._ack_id, delivery._generation)

    async def _cancel_consumer(self, consumer: _Consumer) -> None:
        if not self._forget_consumer(consumer):
            return
        sub_ids, consumer.sub_ids = consumer.sub_ids, []
        for sub_id in sub_ids:
            try:
                await self._send_frame("UNSUBSCRIBE", {"id": sub_id}, what=f"cancelling {consumer.queue!r}")
            except TransportError as exc:
                log.debug("cancelling the consumer of %s: %s", consumer.queue, exc)
        # Messages still arriving for these ids are NACKed (their owner is inactive); keep the map
        # entries until the handlers in flight are done.
        if consumer.inflight:
            await asyncio.wait(list(consumer.inflight), timeout=self.publish_timeout)
        for sub_id in sub_ids:
            self._subs.pop(sub_id, None)
            self._sub_destinations.pop(sub_id, None)

    # -- request / reply --------------------------------------------------------------------------------
    async def _ensure_reply_to(self) -> str:
        async with self._reply_lock:   # one reply queue per connection, however many RPCs start at once
            if self._reply_to is None:
                if self.dialect is Dialect.RABBITMQ:
                    # RabbitMQ subscribes a /temp-queue/ itself on first use; replies carry it as subscription
                    self._reply_to = f"/temp-queue/{_RPC_TEMP}"
                else:
                    destination = f"/temp-queue/{_RPC_TEMP}-{uuid.uuid4().hex[:12]}"
                    sub_id = self._id("reply")
                    self._reply_sub = sub_id
                    await self._send_frame("SUBSCRIBE", {"id": sub_id, "destination": destination, "ack": "auto"},
                                           what="cannot create the reply queue")
                    self._reply_to = destination
            return self._reply_to

    def _on_reply(self, headers: dict[str, Any], body: bytes) -> None:
        correlation_id = headers.get("correlation-id")
        if not self._pending.resolve(correlation_id, body):
            log.debug("event=late_reply correlation_id=%s", correlation_id)

    async def reply(self, request: Message, body: bytes, *, as_user: str | None = None) -> None:
        _no_user_ids(as_user)
        if not request.reply_to:
            return
        self._check_size(body)
        await self._wait_ready()
        await self._publish(reply_destination(self.dialect, request.reply_to), body, reply_to=None,
                            correlation_id=request.correlation_id, headers=None,
                            what=f"cannot reply to {request.reply_to!r}")

    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None,
                  exchange: str | None = None, correlation_id: str | None = None,
                  expect_user: str | None = None) -> bytes:
        _no_user_ids(expect_user)
        return await super().rpc(routing_key, body, timeout=timeout, exchange=exchange,
                                 correlation_id=correlation_id)

    async def _reply_address(self, timeout: float | None) -> tuple[str, int]:
        await self._wait_ready(timeout)
        generation = self._generation
        return await self._ensure_reply_to(), generation

    async def _send_request(self, routing_key: str, body: bytes, *, exchange: str | None, reply_to: str,
                            correlation_id: str, generation: int) -> None:
        name = self.exchange if exchange is None else exchange
        await self._publish(publish_destination(self.dialect, name, routing_key), body, reply_to=reply_to,
                            correlation_id=correlation_id, headers=None, generation=generation,
                            what=f"cannot publish {routing_key!r} to exchange {name!r}")
