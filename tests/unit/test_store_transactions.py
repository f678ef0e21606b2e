"""Where the store's transaction bodies run (``store.transactions``) and its statements built once
(``store.statements``), on real SQLite files and the in-memory database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from gvnfm.store.api import OperationContext
from gvnfm.store.engine import make_engine
from gvnfm.store.migrate import upgrade_engine
from gvnfm.store.sql import SqlStore, clean_json
from gvnfm.store.statements import Statements
from gvnfm.store.tables import vnfm_workers
from gvnfm.store.transactions import Transactions


async def _transactions(url: str) -> Transactions:
    engine = make_engine(url)
    await upgrade_engine(engine)
    return Transactions(engine)


def _worker_row(name: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"worker": name, "endpoint": "e", "lease_until": now, "started_at": now}


async def test_a_sqlite_file_runs_writes_in_one_thread_in_order_and_reads_beside_it(tmp_path: Path) -> None:
    tx = await _transactions(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        assert tx.threaded
        writers: list[str] = []

        def write(i: int) -> Callable[[Connection], int]:
            def body(conn: Connection) -> int:
                writers.append(threading.current_thread().name)
                conn.execute(insert(vnfm_workers).values(**_worker_row(f"w{i:03d}")))
                return i
            return body

        done = await asyncio.gather(*(tx.write(write(i)) for i in range(50)))
        assert done == list(range(50))
        assert set(writers) == {writers[0]} and writers[0].startswith("gvnfm-store-write")
        assert threading.current_thread().name not in writers   # never on the event loop's thread

        def rowids(conn: Connection) -> tuple[list[str], str]:
            rows = conn.execute(text("SELECT worker FROM vnfm_workers ORDER BY rowid")).scalars().all()
            return list(rows), threading.current_thread().name

        order, reader = await tx.read(rowids)
        assert order == [f"w{i:03d}" for i in range(50)]       # committed in the order asked
        assert reader.startswith("gvnfm-store-read")
    finally:
        await tx.close()


async def test_a_body_that_raises_rolls_back_and_the_caller_gets_its_exception(tmp_path: Path) -> None:
    tx = await _transactions(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        def half(conn: Connection) -> None:
            conn.execute(insert(vnfm_workers).values(**_worker_row("half")))
            raise RuntimeError("second statement failed")

        with pytest.raises(RuntimeError, match="second statement failed"):
            await tx.write(half)
        count = await tx.read(lambda conn: conn.execute(select(vnfm_workers.c.worker)).all())
        assert count == []
    finally:
        await tx.close()


async def test_close_waits_for_a_body_already_handed_over_even_if_its_caller_was_cancelled(tmp_path: Path) -> None:
    tx = await _transactions(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    started = threading.Event()

    def slow(conn: Connection) -> None:
        started.set()
        time.sleep(0.2)
        conn.execute(insert(vnfm_workers).values(**_worker_row("slow")))

    task = asyncio.create_task(tx.write(slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await tx.close()     # waits for the body: it committed, as after a crash right after the commit
    check = await _transactions(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    try:
        rows = await check.read(lambda conn: conn.execute(select(vnfm_workers.c.worker)).scalars().all())
        assert rows == ["slow"]
    finally:
        await check.close()


async def test_the_in_memory_database_runs_on_the_async_engine(tmp_path: Path) -> None:
    store = await SqlStore.open("sqlite+aiosqlite://")
    try:
        assert not store._tx.threaded
        op, created = await store.claim_operation("op", action="INSTANTIATE", vnfr_id=None, vnfr_name="v",
                                                  request={"action": "INSTANTIATE"}, worker="w", lease_seconds=60)
        assert created and op.created_by_claim
        await store.set_context("op", OperationContext(allocated={"name": "v"}), worker="w")
        stored = await store.get_operation("op")
        assert stored is not None and stored.context.allocated == {"name": "v"}
    finally:
        await store.close()


def test_operation_updates_are_built_once_per_shape_and_refuse_other_columns() -> None:
    q = Statements("sqlite")
    first = q.update_operation(frozenset({"context"}), held=True)
    assert q.update_operation(frozenset({"context"}), held=True) is first
    assert q.update_operation(frozenset({"context"}), held=False) is not first
    with pytest.raises(ValueError, match="id"):
        q.update_operation(frozenset({"id"}), held=False)


def test_clean_json_keeps_a_clean_document_as_it_is() -> None:
    doc = {"vnfr": {"name": "v", "vdu": [{"vnfc_instance": [{"hostname": "h", "ips": [1, 2.5, True, None]}]}]}}
    assert clean_json(doc) is doc                              # nothing to clean: not copied
    dirty = {"vnfr": {"name": "v\x00", "ok": [1, float("inf")]}}
    cleaned = clean_json(dirty)
    assert cleaned == {"vnfr": {"name": "v\ufffd", "ok": [1, None]}} and dirty["vnfr"]["name"] == "v\x00"
    escaped = {"text": "a literal \\u0000 in a script"}        # only looks like a NUL: kept as it is
    assert clean_json(escaped) == escaped
