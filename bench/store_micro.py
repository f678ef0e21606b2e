"""The store micro-benchmark of docs/performance.md: what recording step results costs in the VNFM's
store (SQLite), one transaction per step, concurrently, and batched as the VNFM does it; then what
one small write transaction costs with its statement built once (as the store builds it) and built
per call, against an empty writer transaction. With ``--pg URL``, then the frequent store calls on
PostgreSQL (a database of their own, dropped afterwards): each one's wall and CPU time, and the CPU
time of the local PostgreSQL server (0 when the server is elsewhere), per call.

``python -m bench.store_micro [--rows 600] [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Connection

from bench.many import create_pg_database, drop_pg_database
from bench.procs import postgres_cpu_seconds
from gvnfm.store.api import RUNNING, OperationContext, StepResult
from gvnfm.store.sql import SqlStore
from gvnfm.store.tables import operations


def _step(op: str, i: int) -> StepResult:
    return StepResult(operation_id=op, step_id=f"INSTANTIATE/0/host-{i}/", action="EXECUTE", event="INSTANTIATE",
                      script_index=0,
                      script="s.sh", hostname=f"host-{i}", vnfr_name="v", status=0, output="", error="",
                      started_at=datetime.now(UTC), duration=0.01)


async def _timed(label: str, rows: int, work: Callable[[], Awaitable[None]]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:58s} wall {wall / rows * 1000:6.3f} ms/row   cpu {cpu / rows * 1000:6.3f} ms/row")


async def _transaction_costs(store: SqlStore, rows: int) -> None:
    """One ``set_context`` transaction: the store's (statement built once), the same UPDATE built per
    call, an empty writer transaction; each through the store's own transaction runner."""
    await store.claim_operation("ctx", action="INSTANTIATE", vnfr_id=None, vnfr_name="v", request={},
                                worker="bench", lease_seconds=600)
    context = OperationContext(allocated={"name": "v", "data": "x" * 3000})
    stored = context.stored()

    def per_call(conn: Connection) -> None:
        conn.execute(update(operations).where(operations.c.id == "ctx", operations.c.worker == "bench",
                                              operations.c.state == RUNNING)
                     .values(updated_at=datetime.now(UTC), context=stored).returning(operations.c.id)).first()

    def empty(conn: Connection) -> None:
        return None

    async def built_once() -> None:
        for _ in range(rows):
            await store.set_context("ctx", context, worker="bench")

    async def built_per_call() -> None:
        for _ in range(rows):
            await store._tx.write(per_call)

    async def nothing() -> None:
        for _ in range(rows):
            await store._tx.write(empty)

    await _timed("set_context (statement built once)", rows, built_once)
    await _timed("the same UPDATE built per call", rows, built_per_call)
    await _timed("an empty writer transaction (BEGIN IMMEDIATE, COMMIT)", rows, nothing)


async def run(rows: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    store = await SqlStore.open(f"sqlite+aiosqlite:///{folder / 'store.db'}")
    try:
        for op in ("seq", "gather", "batch"):
            await store.claim_operation(op, action="INSTANTIATE", vnfr_id=None, vnfr_name="v", request={},
                                        worker="bench", lease_seconds=60)

        async def sequential() -> None:
            for i in range(rows):
                await store.record_step(_step("seq", i))

        async def gathered() -> None:
            await asyncio.gather(*(store.record_step(_step("gather", i)) for i in range(rows)))

        await _timed("record_step one after the other (the VNFM)", rows, sequential)
        await _timed("record_step all at once (asyncio.gather)", rows, gathered)
        for size in (32, 100, 300):
            async def batched(size: int = size) -> None:
                results = [_step("batch", i) for i in range(rows)]
                for j in range(0, rows, size):
                    await store.record_steps(results[j:j + size])

            await _timed(f"record_steps, {size} rows per transaction (executemany)", rows, batched)
        await _transaction_costs(store, rows)
    finally:
        await store.close()
    for sync in ("FULL", "NORMAL"):
        db = sqlite3.connect(folder / f"raw-{sync}.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
        wall = time.perf_counter()
        for i in range(rows):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (str(i), "x"))
            db.execute("COMMIT")
        print(f"{'raw sqlite3 commit, synchronous=' + sync:58s} wall "
              f"{(time.perf_counter() - wall) / rows * 1000:6.3f} ms/row")
        db.close()
    shutil.rmtree(folder, ignore_errors=True)


async def postgres(pg_url: str, rows: int) -> None:
    """The frequent store calls on PostgreSQL, ``rows`` of each, one after the other (sixteenth round:
    reads and the bodies that need no transaction run in autocommit)."""
    db = await create_pg_database(pg_url)
    try:
        store = await SqlStore.open(db)
        try:
            for op in ("ctx", "steps"):
                await store.claim_operation(op, action="INSTANTIATE", vnfr_id=None, vnfr_name="v", request={},
                                            worker="bench", lease_seconds=600)
            context = OperationContext(allocated={"name": "v", "data": "x" * 3000})
            results = [_step("steps", i) for i in range(rows * 10)]

            async def set_context() -> None:
                for _ in range(rows):
                    await store.set_context("ctx", context, worker="bench")

            async def record_steps() -> None:
                for j in range(0, len(results), 10):
                    await store.record_steps(results[j:j + 10])

            async def get_operation() -> None:
                for _ in range(rows):
                    await store.get_operation("ctx")

            async def nfvo_request() -> None:
                for i in range(rows):
                    await store.record_nfvo_request(f"request-{i}", "GRANT_OPERATION")

            async def claim() -> None:
                for i in range(rows):
                    await store.claim_operation(f"op-{i}", action="INSTANTIATE", vnfr_id=None, vnfr_name="v",
                                                request={}, worker="bench", lease_seconds=600)

            for label, work in (("set_context (one UPDATE, held)", set_context),
                                ("record_steps, 10 rows (one executemany)", record_steps),
                                ("get_operation (one SELECT)", get_operation),
                                ("record_nfvo_request (INSERT, then SELECT)", nfvo_request),
                                ("claim_operation, a new one (a transaction)", claim)):
                server = postgres_cpu_seconds()
                cpu, wall = time.process_time(), time.perf_counter()
                await work()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                server = postgres_cpu_seconds() - server
                print(f"PostgreSQL {label:47s} wall {wall / rows * 1000:6.3f}  cpu {cpu / rows * 1000:6.3f}  "
                      f"server cpu {server / rows * 1000:6.3f} ms/call")
        finally:
            await store.close()
    finally:
        await drop_pg_database(pg_url, db)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store_micro")
    p.add_argument("--rows", type=int, default=600)
    p.add_argument("--pg", default="", metavar="URL",
                   help="also the frequent store calls on this PostgreSQL server (a database of their own)")
    args = p.parse_args(argv)
    rows = max(1, args.rows)
    asyncio.run(run(rows))
    if args.pg:
        asyncio.run(postgres(args.pg, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
