"""Message transports: one async interface, an AMQP (RabbitMQ) and an in-memory implementation."""

from gvnfm.transport.base import (
    DEFAULT_EXCHANGE,
    Delivery,
    Handler,
    Message,
    RpcTimeout,
    Subscription,
    Transport,
    TransportError,
)

__all__ = [
    "DEFAULT_EXCHANGE",
    "Delivery",
    "Handler",
    "Message",
    "RpcTimeout",
    "Subscription",
    "Transport",
    "TransportError",
    "open_transport",
]


def open_transport(url: str | None, *, exchange: str = DEFAULT_EXCHANGE, **kwargs: object) -> Transport:
    """A transport for a broker URL: ``amqp://...`` for RabbitMQ, ``memory://<name>`` (or None) for
    the in-process broker of that name."""
    if url is None or url.startswith("memory://"):
        from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport

        name = (url or "memory://default")[len("memory://"):] or "default"
        return InMemoryTransport(InMemoryBroker.named(name), exchange=exchange)
    if url.startswith(("amqp://", "amqps://")):
        from gvnfm.transport.amqp import AmqpTransport

        return AmqpTransport(url, exchange=exchange, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unsupported broker URL {url!r} (use amqp://... or memory://...)")
