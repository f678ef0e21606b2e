"""A TCP relay from a bridge address to the broker, for brokers that listen on loopback only.

``netns`` hosts reach the machine at their bridge's .1 address. A RabbitMQ that listens on
127.0.0.1 only (a common hardened default) is not there, so the VIM listens on ``<.1>:<port>`` and
forwards every connection to ``127.0.0.1:<port>``. RabbitMQ then sees loopback connections, so its
``loopback_users`` rule (guest only from localhost) lets ``guest`` in; dedicated credentials
(``NetnsVim(ems_username=..., ems_password=...)``) are still the better choice for anything shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging

log = logging.getLogger(__name__)

CHUNK = 65536


class BrokerRelay:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen = listen
        self.upstream = upstream
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> bool:
        """Listen; False when the address is already served (the broker listens there itself)."""
        try:
            self._server = await asyncio.start_server(self._accept, self.listen[0], self.listen[1],
                                                      reuse_address=True)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                log.info("event=relay_not_needed listen=%s:%s reason=address_in_use", *self.listen)
                return False
            raise
        log.info("event=relay_started listen=%s:%s upstream=%s:%s", *self.listen, *self.upstream)
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 10)
            except (OSError, TimeoutError) as exc:
                log.warning("event=relay_upstream_failed upstream=%s:%s error=%r", *self.upstream, exc)
                return
            assert up_writer is not None
            self._writers.add(up_writer)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
