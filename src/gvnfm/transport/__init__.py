"""Message transports: one async interface, an AMQP (RabbitMQ) and an in-memory implementation."""

from gvnfm.transport.base import (
    DEFAULT_EXCHANGE,
    BrokerRefused,
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
    "BrokerRefused",
    "Delivery",
    "Handler",
    "Message",
    "RpcTimeout",
    "Subscription",
    "Transport",
    "TransportError",
    "open_transport",
    "url_with_credentials",
]


def url_with_credentials(url: str, username: str, password: str) -> str:
    """The same ``amqp://`` URL with other credentials (what the NFVO hands a registered VNFM)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
