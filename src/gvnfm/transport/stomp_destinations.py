"""How the AMQP model of ``transport.base`` maps onto STOMP destinations, per broker (no I/O).

RabbitMQ (``rabbitmq_stomp``), the same exchange, queues and routing keys as an AMQP peer:

- publish on the topic exchange: ``/exchange/<exchange>/<routing key>``; on the default exchange:
  ``/amq/queue/<queue>`` (publishes to an existing queue, never declares one; unroutable = dropped);
- a queue declared with a binding: SUBSCRIBE ``/exchange/<exchange>/<key>`` with ``x-queue-name`` and
  the ``durable``/``auto-delete``/``exclusive`` headers (declares the named queue and binds it);
  without a binding: SUBSCRIBE ``/queue/<queue>`` with the same headers;
- consuming: SUBSCRIBE ``/amq/queue/<queue>`` (never declares; a missing queue is an ERROR), with
  ``prefetch-count``;
- replies: ``reply-to: /temp-queue/<name>`` (the broker makes an exclusive queue, subscribes to it, and
  an AMQP peer sees its plain ``amq.gen-...`` name); a request from an AMQP peer carries
  ``/reply-queue/<name>``, which is answered as is.

ActiveMQ (JMS destinations; gvnfm-to-gvnfm only):

- the topic exchange is ActiveMQ's virtual topics: publish = ``/topic/VirtualTopic.<routing key>``; a
  queue bound with a key consumes ``/queue/Consumer.<queue>.VirtualTopic.<key>`` (a queue of its own
  per bound queue: every bound queue gets a copy, its consumers compete), except an exclusive queue
  (one worker's broadcast inbox), which subscribes the topic itself;
- the default exchange is the plain queue: publish and consume ``/queue/<queue>``;
- replies: ``reply-to: /temp-queue/<name>`` subscribed explicitly, answered as the broker rewrites it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gvnfm.transport.base import QueueSpec

#: ActiveMQ's virtual topic prefix and the consumer queue prefix of its default configuration
#: (``Consumer.*.VirtualTopic.>``: one name segment between the two, so dots in queue names are replaced).
VIRTUAL_TOPIC = "VirtualTopic."
#: The prefetch asked of ActiveMQ when the consumer asks for "unbounded" (0): it has no unbounded.
ACTIVEMQ_UNBOUNDED_PREFETCH = 1000


class Dialect(enum.StrEnum):
    RABBITMQ = "rabbitmq"
    ACTIVEMQ = "activemq"

    @classmethod
    def from_server(cls, server: str | None) -> Dialect:
        """The dialect of the ``server`` header of CONNECTED (``RabbitMQ/3.10.8``, ``ActiveMQ/5.17.2``)."""
        if server and server.lower().startswith("activemq"):
            return cls.ACTIVEMQ
        return cls.RABBITMQ


@dataclass(frozen=True)
class Subscribe:
    destination: str
    headers: dict[str, str] = field(default_factory=dict)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _queue_headers(spec: QueueSpec) -> dict[str, str]:
    return {"durable": _flag(spec.durable), "auto-delete": _flag(spec.auto_delete),
            "exclusive": _flag(spec.exclusive)}


def _segment(name: str) -> str:
    """``name`` as one segment of a RabbitMQ destination: the plugin splits destinations at ``/`` and
    unescapes ``%2F`` in each segment (a direct reply-to name, ``amq.rabbitmq.reply-to.<base64>``, often
    holds a ``/``: unescaped, the SEND is an ERROR, "not a valid amqqueue destination")."""
    return name.replace("/", "%2F")


def publish_destination(dialect: Dialect, exchange: str, routing_key: str) -> str:
    """Where a message for ``exchange`` (``""`` = the default exchange) and ``routing_key`` goes."""
    if dialect is Dialect.ACTIVEMQ:
        return f"/queue/{routing_key}" if exchange == "" else f"/topic/{VIRTUAL_TOPIC}{routing_key}"
    if exchange == "":
        return f"/amq/queue/{_segment(routing_key)}"
    return f"/exchange/{_segment(exchange)}/{_segment(routing_key)}"


def reply_destination(dialect: Dialect, reply_to: str) -> str:
    """Where the answer to a request with ``reply_to`` goes: a STOMP destination as is (``/reply-queue/``,
    ``/temp-queue/``, ``/remote-temp-queue/``), a plain queue name (an AMQP requester) on the default exchange."""
    if reply_to.startswith("/"):
        return reply_to
    return publish_destination(dialect, "", reply_to)


def reply_to_of(reply_to: str | None) -> str | None:
    """The ``reply-to`` of a MESSAGE as an AMQP peer sees it: RabbitMQ shows a queue name as
    ``/reply-queue/<name>``; the name is what the AMQP transport gets (and answers on the default exchange)."""
    if reply_to and reply_to.startswith("/reply-queue/"):
        return reply_to[len("/reply-queue/"):]
    return reply_to or None


def _consumer_queue(queue: str, key: str) -> str:
    return f"Consumer.{queue.replace('.', '_')}.{VIRTUAL_TOPIC}{key}"


def declare_subscriptions(dialect: Dialect, exchange: str, queue: str, spec: QueueSpec,
                          keys: list[str]) -> list[Subscribe]:
    """SUBSCRIBEs that create ``queue`` (and its bindings to ``keys``) on the broker.

    RabbitMQ: one per binding (or ``/queue/<queue>`` without any); the subscription is cancelled once
    the broker confirmed it (or kept until a consumer comes, for a queue that the cancel would delete).
    ActiveMQ: the virtual topic consumer queues (the plain queue is created by the first SEND or
    consumer); an exclusive queue is a topic subscription, created by consuming."""
    if dialect is Dialect.ACTIVEMQ:
        if spec.exclusive:
            return []
        return [Subscribe(f"/queue/{_consumer_queue(queue, key)}") for key in keys]
    headers = _queue_headers(spec)
    if not keys:
        return [Subscribe(f"/queue/{queue}", headers)]
    return [Subscribe(f"/exchange/{exchange}/{key}", {**headers, "x-queue-name": queue}) for key in keys]


def consume_subscriptions(dialect: Dialect, queue: str, spec: QueueSpec | None, keys: list[str],
                          prefetch: int) -> list[Subscribe]:
    """SUBSCRIBEs that consume ``queue`` (``spec``/``keys``: what this connection declared of it)."""
    if dialect is Dialect.ACTIVEMQ:
        window = {"activemq.prefetchSize": str(prefetch if prefetch > 0 else ACTIVEMQ_UNBOUNDED_PREFETCH)}
        subs = [Subscribe(f"/queue/{queue}", window)]
        for key in keys:
            if spec is not None and spec.exclusive:
                subs.append(Subscribe(f"/topic/{VIRTUAL_TOPIC}{key}", window))
            else:
                subs.append(Subscribe(f"/queue/{_consumer_queue(queue, key)}", window))
        return subs
    headers = {"prefetch-count": str(prefetch)} if prefetch > 0 else {}
    return [Subscribe(f"/amq/queue/{queue}", headers)]


def routing_key_of(destination: str) -> str:
    """The routing key a MESSAGE was published with, from its ``destination`` header."""
    for prefix in ("/exchange/", ):
        if destination.startswith(prefix):
            return destination[len(prefix):].partition("/")[2]
    name = destination.rsplit("/", 1)[-1]
    if name.startswith(VIRTUAL_TOPIC):
        return name[len(VIRTUAL_TOPIC):]
    return name


#: Headers of a MESSAGE that are STOMP's or the broker's own, not the publisher's.
FRAME_HEADERS = frozenset({
    "subscription", "destination", "message-id", "redelivered", "ack", "receipt", "content-length",
    "content-type", "reply-to", "correlation-id", "persistent", "expires", "priority", "timestamp",
    "amqp-message-id", "message_id", "type", "original-destination", "x-queue-name",
})
