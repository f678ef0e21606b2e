"""Transports opened by a test against a private broker it restarts: quick reconnect options, every one
closed at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar


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
