"""The transport interface: topic exchange, named queues, request/reply over reply_to/correlation_id.

Semantics shared by every implementation (and relied upon by the VNFM and the EMS):
- ``publish(rk, body)`` goes to the topic exchange (``openbaton-exchange``); ``exchange=""`` is the
  default exchange, which routes to the queue named ``rk``. Unroutable messages are dropped.
- ``consume(queue, handler, prefetch=n)`` runs ``handler(delivery)`` as its own task for each message,
  at most ``n`` unacknowledged at once (0 = unbounded). The handler acknowledges: a message that is
  neither acked nor rejected when the connection goes away is delivered again (``redelivered``).
- ``rpc(rk, body, timeout)`` publishes with ``reply_to`` = a private reply queue and a fresh
  ``correlation_id`` and waits for the answer; ``reply(msg, body)`` answers such a request.
- ``request(rk, body, timeout)`` is request/reply as the Java NFVO does it (Spring AMQP's
  ``convertSendAndReceive`` without a reply queue): a reply address of the request's own and **no**
  ``correlation_id``; the first message that arrives there is the answer, whatever correlation id it
  carries (python-vnfm-sdk answers with none). Answers are never matched by correlation id alone.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from gvnfm.catalogue.queues import EXCHANGE

DEFAULT_EXCHANGE = EXCHANGE     # the transports' default: Open Baton's exchange


class TransportError(Exception):
    """The broker refused an operation or the connection is gone."""


class BrokerRefused(TransportError):
    """The broker (or the client library before it) refused this one request for good: a message over
    the size limit, a name over 255 bytes, a precondition or access refusal. Sending it again gets the
    same answer, so callers fail at once instead of retrying."""


class RpcTimeout(TransportError):
    """No reply within the deadline."""


@dataclass(frozen=True)
class QueueSpec:
    """How a queue was declared (``declare_queue``'s flags): what a reconnection declares again."""

    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False


@dataclass
class Message:
    body: bytes
    routing_key: str = ""
    reply_to: str | None = None
    correlation_id: str | None = None
    content_type: str = "text/plain"
    redelivered: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    #: AMQP ``user_id``: when set, RabbitMQ has checked it is the publishing connection's user
    user_id: str | None = None


class Delivery(abc.ABC):
    """A message handed to a consumer; it must be acknowledged or rejected exactly once."""

    message: Message

    @abc.abstractmethod
    async def ack(self) -> None: ...

    @abc.abstractmethod
    async def reject(self, requeue: bool = False) -> None: ...


Handler = Callable[[Delivery], Awaitable[None]]
#: what a consumer's owner does once the consumer was started again on a new channel (``consume``)
Restored = Callable[[], Awaitable[None]]


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def cancel(self) -> None: ...


class Transport(abc.ABC):
    """An open connection to a broker."""

    exchange: str

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def declare_queue(self, name: str, *, durable: bool = False, auto_delete: bool = False,
                            exclusive: bool = False, bind: bool = True) -> None:
        """Declare ``name`` (idempotent); with ``bind`` also bind it to the topic exchange with
        routing key = its name."""

    @abc.abstractmethod
    async def bind(self, queue: str, routing_key: str) -> None: ...

    async def delete_unused_queue(self, name: str) -> int:
        """Delete ``name`` with the messages it holds (returns how many) unless a consumer uses it
        (:class:`BrokerRefused`); a missing queue is no error. An in-process broker ends with its
        process, leaving nothing behind: nothing to do."""
        return 0

    @abc.abstractmethod
    async def publish(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                      reply_to: str | None = None, correlation_id: str | None = None,
                      headers: dict[str, Any] | None = None, user_id: str | None = None) -> None:
        """``exchange=None`` is the topic exchange; ``""`` the default exchange."""

    @abc.abstractmethod
    async def publish_routed(self, routing_key: str, body: bytes, *, exchange: str | None = None,
                             user_id: str | None = None) -> bool:
        """Publish, the broker telling whether a queue took the message (AMQP ``mandatory``): False
        when no queue is bound for it, and nothing was delivered. A check that closes no channel
        (a passive declaration or a binding of a missing queue does)."""

    async def reply(self, request: Message, body: bytes, *, as_user: str | None = None) -> None:
        """Answer an RPC request on the default exchange (no-op when it asked for no answer). ``as_user``:
        a host user, which may not write to the default exchange, answers through the topic exchange
        (routing key = the reply queue, which gvnfm's VNFM binds under its name) with its ``user_id``."""
        if request.reply_to:
            await self.publish(request.reply_to, body, exchange=None if as_user else "",
                               correlation_id=request.correlation_id, user_id=as_user)

    @abc.abstractmethod
    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None,
                  exchange: str | None = None, correlation_id: str | None = None,
                  expect_user: str | None = None) -> bytes:
        """Request/reply; raises RpcTimeout after ``timeout`` seconds (None = wait forever). A reply that
        came through the topic exchange is taken only when its ``user_id`` is ``expect_user``."""

    async def request(self, routing_key: str, body: bytes, *, timeout: float | None,
                      exchange: str | None = None) -> bytes:
        """Request/reply on a reply queue of this request's own (exclusive, auto-delete, gone once the
        answer is in), without a correlation id; raises RpcTimeout after ``timeout`` seconds (None =
        wait forever, as the Java NFVO's reply timeout -1). Transports with a cheaper private reply
        address (RabbitMQ's direct reply-to) override it."""
        name = f"gvnfm.reply-{uuid.uuid4().hex}"
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_answer(delivery: Delivery) -> None:
            await delivery.ack()
            if not answer.done():
                answer.set_result(delivery.message.body)

        await self.declare_queue(name, exclusive=True, auto_delete=True, bind=False)
        subscription = await self.consume(name, on_answer)
        try:
            await self.publish(routing_key, body, exchange=exchange, reply_to=name)
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s") from exc
        finally:
            with contextlib.suppress(TransportError):
                await subscription.cancel()     # auto-delete: the queue goes with its consumer

    @abc.abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 0,
                      on_restored: Restored | None = None) -> Subscription:
        """Deliver ``queue``'s messages to ``handler``, at most ``prefetch`` unacknowledged at a time (0: no
        limit). ``on_restored`` runs after the consumer was started again while the connection lived on
        (AMQP: the broker closed its channel; an auto-delete queue went with it, and what was queued in
        it): the owner announces itself again (an EMS registers again, so that the VNFM sends again what
        it has not had answered). Transports whose consumers are lost only with their connection (the
        in-memory broker, STOMP) never run it: the ``on_reconnect`` callbacks cover that."""

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every re-established connection (declarations, registration).
        Transports that never reconnect ignore it."""
        return None
