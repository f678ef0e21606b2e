"""The store micro-benchmark of docs/performance.md: what recording step results costs in the VNFM's
store (SQLite), one transaction per step as the VNFM does it, concurrently, and batched.

``python -m bench.store_micro [--rows 600]``. The batched rows use the store's engine directly (a
prototype of a ``record_steps`` that the store does not have yet); they are skipped if the store's
internals differ.
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

from gvnfm.store.api import StepResult
from gvnfm.store.sql import SqlStore


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
        try:
            from gvnfm.store.tables import steps

            insert, write = store._insert, store._write
        except (ImportError, AttributeError) as exc:
            print(f"batched rows skipped: {exc}")
            return
        for size in (32, 100, 300):
            values = [{"operation_id": "batch", "step_id": f"{size}/{i}", "action": "EXECUTE", "event": "INSTANTIATE",
                       "script_index": 0,
                       "script": "s.sh", "hostname": f"host-{i}", "vnfr_name": "v", "status": 0, "output": "",
                       "error": "", "started_at": datetime.now(UTC), "duration": 0.01} for i in range(rows)]

            async def batched(values: list[dict[str, object]] = values, size: int = size) -> None:
                for j in range(0, rows, size):
                    stmt = insert(steps)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["operation_id", "step_id"],
                        set_={c: stmt.excluded[c] for c in ("status", "output", "error", "duration")})
                    async with write() as conn:
                        await conn.execute(stmt, values[j:j + size])

            await _timed(f"one INSERT .. ON CONFLICT per {size} rows (executemany)", rows, batched)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store_micro")
    p.add_argument("--rows", type=int, default=600)
    asyncio.run(run(max(1, p.parse_args(argv).rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
