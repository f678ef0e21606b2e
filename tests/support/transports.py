"""Transports opened by a test against a private broker it restarts: quick reconnect options, every one
closed at the end; and what the TLS tests of every transport check on a connection pair (deliveries
collected, an RPC echoed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from gvnfm.transport import Delivery, Transport
from tests.support.services import unique


class _Connectable(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...


T = TypeVar("T", bound=_Connectable)

#: reconnect quickly: the tests restart the broker and wait for the transport to come back
QUICK = {"reconnect_initial": 0.2, "reconnect_max": 1.0, "connect_timeout": 10}


@contextlib.asynccontextmanager
async def opened_transports(factory: Callable[..., T]) -> AsyncIterator[Callable[..., Awaitable[T]]]:
    """``make(**options)``: ``factory(**QUICK | options)``, connected; all of them closed on exit."""
    opened: list[T] = []

    async def make(**kwargs: Any) -> T:
        transport = factory(**(QUICK | kwargs))
        await transport.connect()
        opened.append(transport)
        return transport

    try:
        yield make
    finally:
        for transport in opened:
            await transport.close()


def collector() -> tuple[asyncio.Queue[bytes], Callable[[Delivery], Awaitable[None]]]:
    """A queue of the bodies delivered, and the handler that fills it (and acks)."""
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(delivery: Delivery) -> None:
        await got.put(delivery.message.body)
        await delivery.ack()

    return got, collect


async def assert_rpc_echoes(server: Transport, client: Transport, *, correlation_id: str,
                            exchange: str | None = None) -> None:
    """``server`` answers on a queue of its own what ``client`` asks there: the answer comes back."""
    rpc_queue = unique("rpc-echo")

    async def echo(delivery: Delivery) -> None:
        await server.reply(delivery.message, json.dumps({"echo": delivery.message.body.decode()}).encode())
        await delivery.ack()

    await server.declare_queue(rpc_queue, auto_delete=True)
    await server.consume(rpc_queue, echo)
    answer = await client.rpc(rpc_queue, b"ping", timeout=10, correlation_id=correlation_id, exchange=exchange)
    assert json.loads(answer) == {"echo": "ping"}
