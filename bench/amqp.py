"""Raw aio-pika plumbing shared by the floors and the bench's NFVO: a connection, and a minimal
request/reply client (exclusive reply queue, correlation ids, one future per request)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection


async def connect(url: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(url, client_properties={"connection_name": "gvnfm-bench"})


async def server_version(url: str) -> str:
    conn = await aio_pika.connect(url)
    try:
        props = conn.transport.connection.server_properties  # type: ignore[union-attr]
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await conn.close()


class RpcClient:
    """Request/reply; ``call`` returns the reply body. Requests go to the default exchange (routing key:
    the queue's name) or, with ``exchange``, to that existing exchange (as gvnfm's VNFM sends to
    ``openbaton-exchange``); replies come back by the default exchange either way."""

    def __init__(self, url: str, *, exchange: str | None = None) -> None:
        self.url = url
        self.exchange = exchange
        self._target: AbstractExchange | None = None
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._reply_queue = ""
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._ids = itertools.count()
        self.calls = 0

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def channel(self) -> AbstractChannel:
        assert self._channel is not None, "RpcClient is not open"
        return self._channel

    async def open(self) -> None:
        self._conn = await connect(self.url)
        self._channel = await self._conn.channel()
        queue = await self._channel.declare_queue("", exclusive=True, auto_delete=True)
        self._reply_queue = queue.name
        await queue.consume(self._on_reply, no_ack=True)
        self._target = (await self._channel.get_exchange(self.exchange) if self.exchange
                        else self._channel.default_exchange)

    async def close(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = self._channel = self._target = None

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._pending.pop(message.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(message.body)

    async def call(self, routing_key: str, body: bytes, *, timeout: float,
                   correlation_id: str | None = None) -> bytes:
        """Publish ``body`` with ``routing_key`` (the queue's name) and wait for the answer."""
        cid = correlation_id or f"bench-{next(self._ids)}"
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            message = aio_pika.Message(body, reply_to=self._reply_queue, correlation_id=cid)
            assert self._target is not None, "RpcClient is not open"
            await self._target.publish(message, routing_key=routing_key)
            result = await asyncio.wait_for(fut, timeout)
            self.calls += 1
            return result
        finally:
            self._pending.pop(cid, None)


async def reply(channel: AbstractChannel, request: AbstractIncomingMessage, body: bytes) -> None:
    if request.reply_to:
        await channel.default_exchange.publish(
            aio_pika.Message(body, correlation_id=request.correlation_id), routing_key=request.reply_to)
