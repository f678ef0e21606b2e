"""Running the store's transactions: each one a synchronous body, run where its driver is fastest.

Every :class:`gvnfm.store.sql.SqlStore` method is written once, as a plain function of a SQLAlchemy
``Connection`` (the body of one transaction); :class:`Transactions` runs it:

- **SQLite file**: on a ``pysqlite`` engine, in threads of the store's own: one writer thread (this
  process's writes run one at a time, in the order they were asked for) and a few reader threads (WAL
  readers do not wait for the writer). The whole transaction is one hand-off to the thread and one back.
  Through aiosqlite each statement was several hand-offs (cursor, execute, fetch, close, then begin and
  commit), each waiting for the event loop to come round: 0.86 → 0.38 ms per write transaction on an
  idle loop, 2.0 → 0.72 ms on a half-busy one (docs/performance.md, seventh round).
- **PostgreSQL** (asyncpg) and **in-memory SQLite** (one shared connection, which only the async engine
  holds): ``AsyncConnection.run_sync`` on the async engine, as before. On PostgreSQL, reads and the writes
  whose body says it needs no transaction (``atomic=False``) run in autocommit: a statement is one round
  trip instead of three (``BEGIN``, the statement, ``COMMIT``): 0.57–0.58 → 0.36–0.37 ms of the caller's CPU
  and 0.07–0.10 → 0.03 ms of the server's for a one-row read (docs/performance.md, sixteenth round).

Invariants:

- a body runs inside one transaction that commits when it returns and rolls back when it raises; a
  write body runs as a writer (``BEGIN IMMEDIATE`` on SQLite: across processes, one writer at a time);
  except, on PostgreSQL, a read body and a write body run with ``atomic=False``: each of their statements
  commits on its own (a statement is atomic by itself; what a raise leaves is what ran before it). A
  body may say ``atomic=False`` only if no partial run of it breaks an invariant: one statement (an
  ``executemany`` is one: asyncpg runs it whole or not at all), or statements each whole on its own
  that hold no lock for the next. A PostgreSQL read never saw one snapshot: at read committed, the
  server's default, each statement of a transaction takes its own;
- a body is run at most once; a caller cancelled while its body runs does not learn whether it
  committed (the thread finishes it; on the async path the rollback may win): the same as a crash at that
  point, which every caller already survives;
- :meth:`Transactions.close` waits for the bodies already handed over, then closes the connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from gvnfm.ops.metrics import STORE_COMMIT_SECONDS
from gvnfm.store.engine import DEFAULT_BUSY_TIMEOUT, is_memory, thread_engine, writer

T = TypeVar("T")
Body = Callable[[Connection], T]

#: reader threads of a SQLite file store (WAL: readers run beside the one writer)
READER_THREADS = 2


class Transactions:
    """Where the store's transaction bodies run (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.engine = engine
        self._writer = writer(engine)
        sqlite = engine.dialect.name == "sqlite"
        threaded = sqlite and not is_memory(engine.url)
        #: the synchronous engine of a SQLite file, None where bodies run on the async engine
        self._sync: Engine | None = thread_engine(engine.url, busy_timeout) if threaded else None
        self._sync_writer = writer(self._sync) if self._sync is not None else None
        # (an executor starts its threads on its first use: unused ones cost nothing)
        self._write_thread = ThreadPoolExecutor(1, "gvnfm-store-write")
        self._read_threads = ThreadPoolExecutor(READER_THREADS, "gvnfm-store-read")
        # in-memory SQLite: one shared connection, so one transaction at a time, readers included
        self._lock = asyncio.Lock() if sqlite and not threaded else None
        #: PostgreSQL: the same pool in autocommit, for reads and the writes that need no transaction
        self._autocommit: AsyncEngine | None = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else None)

    @property
    def threaded(self) -> bool:
        """Whether bodies run in the store's own threads (a SQLite file)."""
        return self._sync is not None

    async def write(self, body: Body[T], *, atomic: bool = True) -> T:
        """Run ``body`` in a writer transaction; the commit (or the rollback of its exception) is done
        when this returns. ``atomic=False``: the body needs no transaction around its statements (see the
        module docstring); on PostgreSQL each commits on its own."""
        started = time.monotonic()
        if self._sync is not None:
            result = await asyncio.wrap_future(self._write_thread.submit(self._run_sync, body, True))
        elif not atomic and self._autocommit is not None:
            async with self._autocommit.connect() as conn:
                result = await conn.run_sync(body)
        else:
            async with self._lock or nullcontext(), self._writer.begin() as conn:
                result = await conn.run_sync(body)
        STORE_COMMIT_SECONDS.observe(time.monotonic() - started)
        return result

    async def read(self, body: Body[T]) -> T:
        """Run ``body`` as a reader: in a transaction that sees one snapshot on SQLite, in autocommit on
        PostgreSQL (where each statement sees its own snapshot either way, see the module docstring)."""
        if self._sync is not None:
            return await asyncio.wrap_future(self._read_threads.submit(self._run_sync, body, False))
        if self._autocommit is not None:
            async with self._autocommit.connect() as conn:
                return await conn.run_sync(body)
        lock: AbstractAsyncContextManager[Any] = self._lock or nullcontext()
        async with lock, self.engine.begin() as conn:
            return await conn.run_sync(body)

    def _run_sync(self, body: Body[T], write: bool) -> T:
        engine = self._sync_writer if write else self._sync
        assert engine is not None
        with engine.begin() as conn:
            return body(conn)

    async def close(self) -> None:
        """Wait for the bodies handed over, then close every connection."""
        for pool in (self._write_thread, self._read_threads):
            await asyncio.to_thread(pool.shutdown, wait=True)
        if self._sync is not None:
            self._sync.dispose()
        await self.engine.dispose()
