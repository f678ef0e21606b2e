"""Message transports: one async interface; AMQP (RabbitMQ), STOMP (RabbitMQ, ActiveMQ) and in-memory."""

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

#: URL schemes of the STOMP transport.
STOMP_SCHEMES = ("stomp://", "stomp+ssl://")
#: URL schemes of a real broker (AMQP or STOMP).
BROKER_SCHEMES = ("amqp://", "amqps://", *STOMP_SCHEMES)

__all__ = [
    "BROKER_SCHEMES",
    "DEFAULT_EXCHANGE",
    "STOMP_SCHEMES",
    "BrokerRefused",
    "Delivery",
    "Handler",
    "Message",
    "Restored",
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
    """A transport for a broker URL: ``amqp://...`` for RabbitMQ, ``stomp://...`` (``stomp+ssl://``) for
    RabbitMQ's STOMP plugin or ActiveMQ, ``memory://<name>`` (or None) for the in-process broker of that name."""
    if url is None or url.startswith("memory://"):
        from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport

        name = (url or "memory://default")[len("memory://"):] or "default"
        return InMemoryTransport(InMemoryBroker.named(name), exchange=exchange)
    if url.startswith(("amqp://", "amqps://")):
        from gvnfm.transport.amqp import AmqpTransport

        return AmqpTransport(url, exchange=exchange, **kwargs)  # type: ignore[arg-type]
    if url.startswith(STOMP_SCHEMES):
        from gvnfm.transport.stomp import StompTransport

        return StompTransport(url, exchange=exchange, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unsupported broker URL {url!r} (use amqp://..., stomp://... or memory://...)")
