"""SqlStore against real databases: a SQLite file and the real PostgreSQL (a database of its own per
module, dropped at the end). Every test runs on both backends."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from gvnfm.store.api import DONE, FAILED, RUNNING, LeaseLost, OperationContext, StepResult
from gvnfm.store.engine import make_engine
from gvnfm.store.migrate import VERSION_TABLE, head_revision, upgrade, upgrade_engine
from gvnfm.store.sql import KEY_BYTES, OperationNotFound, SqlStore, open_store, utcnow
from gvnfm.store.tables import Base, operations, steps
from tests.support.pg import temporary_pg_database
from tests.support.services import unique

FIXTURES = Path(__file__).parent.parent / "fixtures"
# -- databases ------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same backend (never migrated)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'fresh.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    with temporary_pg_database(pg_url) as url:
        yield url


# -- helpers --------------------------------------------------------------------------------------------
async def claim(s: SqlStore, op_id: str, worker: str = "w1", lease: float = 30.0, *,
                vnfr_id: str | None = "vnfr-1", vnfr_name: str | None = "iperf",
                request: dict[str, Any] | None = None) -> tuple[Any, bool]:
    return await s.claim_operation(op_id, action="INSTANTIATE", vnfr_id=vnfr_id, vnfr_name=vnfr_name,
                                   request=request if request is not None else {"action": "INSTANTIATE"},
                                   worker=worker, lease_seconds=lease)


def step(op_id: str, step_id: str, *, status: int = 0, started: datetime | None = None, host: str = "vnfc-0",
         vnfr_name: str | None = "iperf", output: str = "ok", error: str = "") -> StepResult:
    return StepResult(operation_id=op_id, step_id=step_id, action="EXECUTE", event="INSTANTIATE", script_index=0,
                      script="install.sh", hostname=host, vnfr_name=vnfr_name, status=status, output=output,
                      error=error, started_at=started or datetime.now(UTC), duration=0.25)


# -- migrations -----------------------------------------------------------------------------------------
async def test_open_migrates_to_head_and_reopen_is_idempotent(fresh_db_url: str) -> None:
    s1 = await SqlStore.open(fresh_db_url)
    op_id = unique("op")
    await claim(s1, op_id)
    async with s1.engine.connect() as conn:
        rev = await conn.run_sync(
            lambda c: MigrationContext.configure(c, opts={"version_table": VERSION_TABLE}).get_current_revision())
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    await s1.close()
    assert rev == head_revision() == "0004"
    assert {"operations", "steps", "vnfrs", "ems_registrations", "vnfm_workers", "nfvo_requests",
            VERSION_TABLE} <= tables

    s2 = await SqlStore.open(fresh_db_url)     # again: no error, data kept, one version row
    try:
        op = await s2.get_operation(op_id)
        assert op is not None and op.state == RUNNING
        async with s2.engine.connect() as conn:
            versions = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars().all()
        assert versions == ["0004"]
    finally:
        await s2.close()


async def test_concurrent_opens_of_a_fresh_database_migrate_once(fresh_db_url: str) -> None:
    stores = await asyncio.gather(*(SqlStore.open(fresh_db_url) for _ in range(4)))
    try:
        op_id = unique("op")
        await claim(stores[0], op_id)
        for s in stores:
            assert (await s.get_operation(op_id)) is not None
    finally:
        for s in stores:
            await s.close()


async def test_migrations_create_exactly_the_model_schema(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(
            MigrationContext.configure(c, opts={"compare_type": True, "version_table": VERSION_TABLE}), Base.metadata))
    assert diff == []


#: Steps as the plan before revision 0004 recorded them (no action column): step id, script index,
#: script; the action 0004 gives them; whether the id parsing of that time (``plan.is_script_run``:
#: a script index and no ``/dependency`` ending) called them a script run.
OLD_STEPS = [
    ("INSTANTIATE/0/h-1/", 0, "install.sh", "EXECUTE", True),
    ("CONFIGURE/1/h-1/src-7", 1, "configure.sh", "EXECUTE", True),
    ("CONFIGURE/0/h-1/dependency", 0, "ob_parameters", "SAVE_VNFR_DEPENDENCY", False),
    ("DELIVER/clone/h-1", -1, "https://git.example/scripts.git", "CLONE_SCRIPTS", False),
    ("DELIVER/clone/h-2", -1, "clone", "SAVE_SCRIPTS", False),          # a script named "clone"
    ("DELIVER/install.sh/h-1", -1, "install.sh", "SAVE_SCRIPTS", False),
    ("UPDATE_SCRIPT/fix.sh/h-1", -1, "fix.sh", "SCRIPTS_UPDATE", False),
    ("EXECUTE_SAVE/h-1", -1, "probe.sh", "SAVE_SCRIPTS", False),
    ("EXECUTE/0/h-1/", 0, "probe.sh", "EXECUTE", True),
    ("x", 0, "short.sh", "EXECUTE", True),                               # shorter than "/dependency"
    ("START/0/h-1/DEPENDENCY", 0, "start.sh", "EXECUTE", True),          # the ending is case-sensitive
]


async def test_0004_fills_in_the_action_of_the_steps_of_an_older_database(fresh_db_url: str) -> None:
    """A database made by the previous migration (0003), with steps and a context as that version
    wrote them, migrated to head: every step has its action, the script runs are those the old id
    parsing found, and the context reads back typed (unknown and ill-typed keys dropped)."""
    engine = make_engine(fresh_db_url)
    try:
        assert await upgrade_engine(engine, "0003") == "0003"
        now = utcnow()
        async with engine.begin() as conn:
            assert "action" not in {c["name"] for c in await conn.run_sync(
                lambda c: inspect(c).get_columns("steps"))}
            await conn.execute(operations.insert().values(
                id="old-op", action="INSTANTIATE", vnfr_id="v-1", vnfr_name="web", state=FAILED, request={},
                reply=None, error=None, worker=None, lease_until=None, replied=True, created_at=now, updated_at=now,
                context={"allocated": {"id": "v-1"}, "resumable": False, "scaled_vnfc": 7, "a_later_key": [1]}))
            await conn.execute(steps.insert(), [
                {"operation_id": "old-op", "step_id": step_id, "event": step_id.split("/")[0], "script_index": index,
                 "script": script, "hostname": "h-1", "vnfr_name": "web", "status": 0, "output": "", "error": "",
                 "started_at": now, "duration": 0.1} for step_id, index, script, _, _ in OLD_STEPS])
    finally:
        await engine.dispose()
    store = await SqlStore.open(fresh_db_url)
    try:
        got = {s.step_id: s for s in await store.steps("old-op")}
        assert {k: s.action for k, s in got.items()} == {step_id: action for step_id, _, _, action, _ in OLD_STEPS}
        assert {k for k, s in got.items() if s.is_script_run} == {s[0] for s in OLD_STEPS if s[4]}
        op = await store.get_operation("old-op")
        assert op is not None and op.context == OperationContext(allocated={"id": "v-1"}, resumable=False)
        # a step recorded from now on keeps the action it is given
        await store.record_step(step("old-op", "new"))
        assert {s.step_id: s.action for s in await store.steps("old-op")}["new"] == "EXECUTE"
    finally:
        await store.close()


def test_sync_upgrade_function(fresh_db_url: str) -> None:
    upgrade(fresh_db_url)
    upgrade(fresh_db_url)                            # idempotent

    async def check() -> set[str]:
        s = await SqlStore.open(fresh_db_url)
        try:
            async with s.engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await s.close()

    assert {"operations", "steps"} <= asyncio.run(check())


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite pragmas")
    s = await SqlStore.open(db_url.replace("sqlite+aiosqlite", "sqlite"))   # plain sqlite:// is accepted
    try:
        async with s.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 1000
    finally:
        await s.close()


# -- claims ---------------------------------------------------------------------------------------------
async def test_claim_creates_then_finds(store: SqlStore) -> None:
    op_id = unique("op")
    request = {"action": "INSTANTIATE", "vnfd": {"name": "iperf", "vdu": [1, 2.5, None, True]}}
    op, owned = await claim(store, op_id, "w1", request=request)
    assert owned
    assert (op.id, op.state, op.worker, op.action, op.request) == (op_id, RUNNING, "w1", "INSTANTIATE", request)
    assert op.vnfr_id == "vnfr-1" and op.vnfr_name == "iperf" and op.reply is None and not op.replied
    assert op.context == OperationContext()
    assert op.lease_until is not None and op.lease_until.tzinfo is not None
    assert op.lease_until - op.created_at == pytest.approx(timedelta(seconds=30), abs=timedelta(seconds=1))

    again, owned2 = await claim(store, op_id, "w2")          # another worker, lease still valid
    assert not owned2 and again.worker == "w1" and again.state == RUNNING

    mine, owned3 = await claim(store, op_id, "w1", lease=60)  # the holder itself (redelivery)
    assert owned3 and mine.worker == "w1"
    assert mine.lease_until is not None and mine.lease_until > op.lease_until


async def test_finished_operation_is_not_owned_and_returns_its_reply(store: SqlStore) -> None:
    for final in (DONE, FAILED):
        op_id = unique("op")
        await claim(store, op_id, "w1")
        reply = {"action": "INSTANTIATE", "virtualNetworkFunctionRecord": {"id": "vnfr-1", "status": "ACTIVE"}}
        await store.finish_operation(op_id, state=final, reply=reply, error="boom" if final == FAILED else None)
        for worker in ("w1", "w2"):
            op, owned = await claim(store, op_id, worker, lease=0.001)
            assert not owned
            assert op.state == final and op.reply == reply and op.lease_until is None
            assert op.error == ("boom" if final == FAILED else None)


@pytest.mark.parametrize("expired", [False, True], ids=["new", "expired"])
async def test_ten_concurrent_claimers_on_separate_engines(db_url: str, expired: bool) -> None:
    stores = [await SqlStore.open(db_url) for _ in range(10)]
    try:
        op_id = unique("op")
        if expired:        # a crashed worker's operation: everybody sees the lease expired
            await claim(stores[0], op_id, "dead-worker", lease=0.05)
            await asyncio.sleep(0.1)
        results = await asyncio.gather(*(claim(s, op_id, f"worker-{i}") for i, s in enumerate(stores)))
        owners = [op.worker for op, owned in results if owned]
        assert len(owners) == 1
        stored = await stores[0].get_operation(op_id)
        assert stored is not None and stored.worker == owners[0]
        # everybody saw the same (single) row
        assert {op.created_at for op, _ in results} == {stored.created_at}
    finally:
        for s in stores:
            await s.close()


def _claim_in_process(url: str, op_id: str, worker: str, barrier: Any, out: Any) -> None:
    async def run() -> tuple[bool, str | None]:
        s = await SqlStore.open(url)
        try:
            await s.get_operation(op_id)                     # connected and warm before the start line
            await asyncio.to_thread(barrier.wait, 30)
            op, owned = await claim(s, op_id, worker)
            return owned, op.worker
        finally:
            await s.close()

    try:
        owned, holder = asyncio.run(run())
        out.put((worker, owned, holder, None))
    except BaseException as exc:
        out.put((worker, False, None, repr(exc)))


@pytest.mark.parametrize("expired", [False, True], ids=["new", "expired"])
async def test_ten_concurrent_claimers_in_separate_processes(store: SqlStore, db_url: str, expired: bool) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["gvnfm.store.sql", __name__])
    op_id = unique("op")
    if expired:
        await claim(store, op_id, "dead-worker", lease=0.05)   # expires while the processes start
    barrier, out = ctx.Barrier(10), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(db_url, op_id, f"proc-{i}", barrier, out), daemon=True)
             for i in range(10)]
    for p in procs:
        p.start()
    try:
        results = [await asyncio.to_thread(out.get, True, 60) for _ in procs]
    except queue.Empty:
        pytest.fail("a claimer process did not report within 60 s")
    finally:
        for p in procs:
            await asyncio.to_thread(p.join, 10)
            if p.is_alive():
                p.kill()
    assert [r for r in results if r[3]] == []
    owners = [worker for worker, owned, _, _ in results if owned]
    assert len(owners) == 1
    assert {holder for _, _, holder, _ in results} == {owners[0]}
    stored = await store.get_operation(op_id)
    assert stored is not None and stored.worker == owners[0]


async def test_expired_lease_can_be_taken_over(store: SqlStore) -> None:
    op_id = unique("op")
    first, owned = await claim(store, op_id, "w1", lease=600)
    assert owned
    assert not (await claim(store, op_id, "w2"))[1]
    # the holder's lease runs out (the test expires it: 1 ms from now, then waits for that moment)
    assert await store.renew_lease(op_id, "w1", 0.001)
    held = await store.get_operation(op_id)
    assert held is not None and held.lease_until is not None
    while utcnow() <= held.lease_until:
        await asyncio.sleep(0.01)
    taken, owned2 = await claim(store, op_id, "w2", lease=30)
    assert owned2 and taken.worker == "w2" and taken.created_at == first.created_at
    assert not (await claim(store, op_id, "w1"))[1]           # the old holder lost it
    assert await store.renew_lease(op_id, "w1", 30) is False
    assert await store.renew_lease(op_id, "w2", 30) is True


async def test_renew_lease(store: SqlStore) -> None:
    op_id = unique("op")
    op, _ = await claim(store, op_id, "w1", lease=1)
    assert await store.renew_lease(op_id, "w1", 120)
    renewed = await store.get_operation(op_id)
    assert renewed is not None and renewed.lease_until is not None and op.lease_until is not None
    assert renewed.lease_until - op.lease_until > timedelta(seconds=100)
    assert not await store.renew_lease(op_id, "someone-else", 120)
    assert not await store.renew_lease(unique("missing"), "w1", 120)
    await store.finish_operation(op_id, state=DONE, reply=None)
    assert not await store.renew_lease(op_id, "w1", 120)      # finished operations have no lease
    with pytest.raises(ValueError, match="positive"):
        await store.renew_lease(op_id, "w1", 0)


# -- operation updates ----------------------------------------------------------------------------------
async def test_finish_mark_replied_and_context(store: SqlStore) -> None:
    op_id = unique("op")
    op, _ = await claim(store, op_id)
    context = OperationContext(allocated={"id": "vnfr-1", "vdu": [{"vnfc_instance": [{"hostname": "h-1"}]}]},
                               scaled_before=["a", None], resumable=False)
    await store.set_context(op_id, context)
    got = await store.get_operation(op_id)
    assert got is not None and got.context == context and got.updated_at >= op.updated_at
    await store.set_context(op_id, OperationContext(ems_user="u-4"))                  # replaces
    assert (await store.get_operation(op_id)).context == OperationContext(ems_user="u-4")  # type: ignore[union-attr]

    await store.finish_operation(op_id, state=FAILED, reply={"action": "ERROR"}, error="script failed")
    await store.mark_replied(op_id)
    done = await store.get_operation(op_id)
    assert done is not None
    assert (done.state, done.reply, done.error, done.replied, done.lease_until) == (
        FAILED, {"action": "ERROR"}, "script failed", True, None)
    # resumed later: finished again, the replied flag stays
    await store.finish_operation(op_id, state=DONE, reply={"action": "ERROR"}, error="resumed by x")
    again = await store.get_operation(op_id)
    assert again is not None and again.state == DONE and again.replied and again.error == "resumed by x"


async def test_updates_of_unknown_operations_and_bad_states_raise(store: SqlStore) -> None:
    missing = unique("missing")
    assert await store.get_operation(missing) is None
    with pytest.raises(OperationNotFound):
        await store.finish_operation(missing, state=DONE, reply=None)
    with pytest.raises(OperationNotFound):
        await store.mark_replied(missing)
    with pytest.raises(OperationNotFound):
        await store.set_context(missing, OperationContext())
    with pytest.raises(OperationNotFound):
        await store.record_step(step(missing, "s1"))
    op_id = unique("op")
    await claim(store, op_id)
    with pytest.raises(ValueError, match="DONE or FAILED"):
        await store.finish_operation(op_id, state="WHATEVER", reply=None)
    with pytest.raises(ValueError, match="positive"):
        await claim(store, unique("op"), lease=-1)
    assert (await store.get_operation(op_id)).state == RUNNING   # type: ignore[union-attr]


async def test_list_operations_filters_orders_and_limits(store: SqlStore) -> None:
    vnfr = unique("vnfr")
    ids = [unique("op") for _ in range(4)]
    for op_id in ids:
        await claim(store, op_id, vnfr_id=vnfr)
    await store.finish_operation(ids[1], state=DONE, reply=None)
    await claim(store, unique("op"), vnfr_id=unique("other"))

    listed = await store.list_operations(vnfr_id=vnfr)
    assert [o.id for o in listed] == ids[::-1]                 # newest first
    assert [o.id for o in await store.list_operations(vnfr_id=vnfr, state=DONE)] == [ids[1]]
    assert [o.id for o in await store.list_operations(vnfr_id=vnfr, state=RUNNING, limit=2)] == [ids[3], ids[2]]
    assert await store.list_operations(vnfr_id=vnfr, limit=0) == []
    assert len(await store.list_operations(limit=3)) == 3


# -- steps ----------------------------------------------------------------------------------------------
async def test_record_step_is_an_idempotent_upsert_and_steps_are_time_ordered(store: SqlStore) -> None:
    op_id = unique("op")
    await claim(store, op_id)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    await store.record_step(step(op_id, "CONFIGURE/0/vnfc-0/run", started=t0 + timedelta(seconds=20)))
    await store.record_step(step(op_id, "INSTANTIATE/0/vnfc-0/run", started=t0, status=1, error="no disk"))
    await store.record_step(step(op_id, "INSTANTIATE/0/vnfc-1/run", started=t0 + timedelta(seconds=10)))
    # the failed step re-run (RESUME): same key, new result
    retry = step(op_id, "INSTANTIATE/0/vnfc-0/run", started=t0 + timedelta(seconds=30), output="fixed")
    await store.record_step(retry)
    await store.record_step(retry)                             # twice: still one row
    got = await store.steps(op_id)
    assert [s.step_id for s in got] == ["INSTANTIATE/0/vnfc-1/run", "CONFIGURE/0/vnfc-0/run",
                                        "INSTANTIATE/0/vnfc-0/run"]
    assert got[-1] == retry
    assert all(s.started_at.tzinfo is not None and s.started_at.utcoffset() == timedelta(0) for s in got)
    assert await store.steps(unique("none")) == []


async def test_a_batch_of_step_results_is_stored_whole_or_not_at_all(store: SqlStore) -> None:
    # on PostgreSQL the batch is one executemany in autocommit (no transaction around it): still whole
    op_id = unique("op")
    await claim(store, op_id)
    batch = [step(op_id, f"INSTANTIATE/0/vnfc-{i}/run", host=f"vnfc-{i}") for i in range(5)]
    with pytest.raises(OperationNotFound):   # the last row's operation is unknown: its foreign key fails
        await store.record_steps([*batch, step(unique("none"), "INSTANTIATE/0/vnfc-9/run")])
    assert await store.steps(op_id) == []
    await store.record_steps(batch)
    assert [s.step_id for s in await store.steps(op_id)] == [s.step_id for s in batch]


async def test_a_body_that_needs_no_transaction_runs_in_autocommit_on_postgresql(store: SqlStore,
                                                                                 db_url: str) -> None:
    """``Transactions.write(body, atomic=False)`` and reads: on PostgreSQL each statement commits on its
    own (one round trip, no BEGIN and COMMIT around it); elsewhere, and for atomic bodies, one
    transaction that a raise rolls back."""
    postgres = not db_url.startswith("sqlite")
    await store._tx.write(lambda c: c.execute(text("CREATE TABLE IF NOT EXISTS t_autocommit (k TEXT)")))

    def insert_then_fail(k: str) -> Any:
        def body(conn: Any) -> None:
            conn.execute(text("INSERT INTO t_autocommit VALUES (:k)"), {"k": k})
            raise RuntimeError("the body fails after its first statement")
        return body

    def stored(conn: Any) -> list[str]:
        return list(conn.execute(text("SELECT k FROM t_autocommit ORDER BY k")).scalars())

    with pytest.raises(RuntimeError):
        await store._tx.write(insert_then_fail("atomic"))
    with pytest.raises(RuntimeError):
        await store._tx.write(insert_then_fail("not-atomic"), atomic=False)
    assert await store._tx.read(stored) == (["not-atomic"] if postgres else [])

    def two_transaction_starts(conn: Any) -> tuple[Any, Any]:
        first = conn.execute(text("SELECT pg_sleep(0.01), transaction_timestamp()")).one()[1]
        return first, conn.execute(text("SELECT transaction_timestamp()")).scalar_one()

    if postgres:   # autocommit: each statement is a transaction of its own, with its own start
        for run in (store._tx.read, lambda body: store._tx.write(body, atomic=False)):
            first, second = await run(two_transaction_starts)
            assert second > first
        first, second = await store._tx.write(two_transaction_starts)   # atomic: one transaction
        assert first == second


async def test_naive_datetimes_are_taken_as_utc(store: SqlStore) -> None:
    op_id = unique("op")
    await claim(store, op_id)
    naive = datetime(2024, 3, 1, 12, 30, 15, 123456)
    await store.record_step(step(op_id, "s", started=naive))
    in_utc = datetime(2024, 3, 1, 14, 30, 15, 123456, tzinfo=UTC)
    await store.record_step(step(op_id, "t", started=in_utc.astimezone(timezone(timedelta(hours=2)))))
    by_id = {s.step_id: s.started_at for s in await store.steps(op_id)}
    assert by_id["s"] == naive.replace(tzinfo=UTC) and by_id["s"].tzinfo is not None
    assert by_id["t"] == in_utc and by_id["t"].utcoffset() == timedelta(0)


# -- bounded and odd text -------------------------------------------------------------------------------
async def test_output_and_errors_are_bounded_keeping_the_tail(db_url: str) -> None:
    s = await SqlStore.open(db_url, max_text=1024)
    try:
        op_id = unique("op")
        await claim(s, op_id)
        out = "".join(f"line {i}\n" for i in range(20000)) + "THE END"
        err = "é" * 5000 + "last error"                        # 2-byte characters
        await s.record_step(step(op_id, "big", output=out, error=err, status=2))
        await s.record_step(step(op_id, "small", output="short", error=""))
        got = {x.step_id: x for x in await s.steps(op_id)}
        big = got["big"]
        for stored, original in ((big.output, out), (big.error, err)):
            assert len(stored.encode()) <= 1024
            marker, _, tail = stored.partition("\n")
            assert "truncated" in marker
            dropped = int(marker.split()[1])
            assert dropped == len(original.encode()) - len(tail.encode())
            assert original.endswith(tail) and len(tail.encode()) > 900
        assert big.output.endswith("THE END") and big.error.endswith("last error")
        assert got["small"].output == "short"

        await s.finish_operation(op_id, state=FAILED, reply=None, error="x" * 5000 + "why")
        op = await s.get_operation(op_id)
        assert op is not None and op.error is not None
        assert len(op.error.encode()) <= 1024 and op.error.endswith("why") and "truncated" in op.error
    finally:
        await s.close()


async def test_odd_text_and_json_are_stored(store: SqlStore) -> None:
    op_id = unique("op")
    request = {"action": "INSTANTIATE", "nul": "a\x00b", "surrogate": "x\ud800y", "nan": float("nan"),
               "inf": [float("inf")], "emoji": "🚀 ünï", 7: "int key"}
    _, owned = await claim(store, op_id, request=request)
    assert owned
    got = await store.get_operation(op_id)
    assert got is not None
    assert got.request == {"action": "INSTANTIATE", "nul": "a\ufffdb", "surrogate": "x?y", "nan": None,
                           "inf": [None], "emoji": "🚀 ünï", "7": "int key"}
    await store.record_step(step(op_id, "s\x00", output="out\x00put", error="e\udcff", host="h\x00"))
    [s] = await store.steps(op_id)
    assert (s.step_id, s.output, s.error, s.hostname) == ("s\ufffd", "out\ufffdput", "e?", "h\ufffd")


async def test_long_keys_are_stored_and_found(store: SqlStore) -> None:
    op_id = "op-" + "x" * 5000 + unique("")
    host = "h" * 4000
    op, owned = await claim(store, op_id, vnfr_id="v" * 3000, vnfr_name="n" * 3000)
    assert owned and len(op.id.encode()) <= KEY_BYTES
    other, owned2 = await claim(store, op_id[:-1] + "!", "w2")   # differs only at the end: another operation
    assert owned2 and other.id != op.id
    assert (await claim(store, op_id, "w2"))[1] is False        # the same long id maps to the same row
    await store.record_step(step(op_id, "s" * 3000, host=host, vnfr_name="n" * 3000, status=1))
    assert len(await store.steps(op_id)) == 1
    assert len(await store.script_results(vnfr_name="n" * 3000, hostname=host)) == 1
    await store.finish_operation(op_id, state=FAILED, reply=None)
    failed = await store.last_failed_operation("v" * 3000)
    assert failed is not None and failed.id == op.id
    await store.record_registration(host, "generic")
    assert await store.registered_hostnames([host, "h" * 3999]) == {host}


# -- resume ---------------------------------------------------------------------------------------------
async def test_last_failed_operation(store: SqlStore) -> None:
    vnfr = unique("vnfr")
    t0 = datetime.now(UTC)

    async def op_with(state: str | None, statuses: list[int]) -> str:
        op_id = unique("op")
        await claim(store, op_id, vnfr_id=vnfr)
        for i, status in enumerate(statuses):
            await store.record_step(step(op_id, f"s{i}", status=status, started=t0 + timedelta(seconds=i)))
        if state is not None:
            await store.finish_operation(op_id, state=state, reply={"action": "ERROR"})
        await asyncio.sleep(0.01)                              # distinct created_at
        return op_id

    assert await store.last_failed_operation(vnfr) is None
    older = await op_with(FAILED, [0, 1])
    newer = await op_with(FAILED, [0, 0, 3])
    await op_with(FAILED, [0, 0])              # failed outside a script (e.g. EMS timeout): no failed step
    await op_with(DONE, [1])                   # done (e.g. resumed already)
    await op_with(None, [1])                   # still running
    await op_with(FAILED, [])                  # failed before any step
    found = await store.last_failed_operation(vnfr)
    assert found is not None and found.id == newer and found.state == FAILED
    await store.finish_operation(newer, state=DONE, reply=None, error="resumed")
    assert (await store.last_failed_operation(vnfr)).id == older   # type: ignore[union-attr]
    assert await store.last_failed_operation(unique("other-vnfr")) is None


async def test_finish_fills_in_the_vnfr_an_instantiate_learned(store: SqlStore) -> None:
    op_id, vnfr = unique("op"), unique("vnfr")
    await claim(store, op_id, vnfr_id=None, vnfr_name=None)   # INSTANTIATE: no VNFR id yet
    await store.record_step(step(op_id, "s0", status=1))
    await store.finish_operation(op_id, state=FAILED, reply={"action": "ERROR"}, vnfr_id=vnfr, vnfr_name="iperf-7")
    op = await store.get_operation(op_id)
    assert op is not None and (op.vnfr_id, op.vnfr_name) == (vnfr, "iperf-7")
    assert (await store.last_failed_operation(vnfr)).id == op_id   # type: ignore[union-attr]
    assert [o.id for o in await store.list_operations(vnfr_id=vnfr)] == [op_id]
    # fills in only: a known VNFR is never replaced
    await store.finish_operation(op_id, state=DONE, reply=None, vnfr_id="another", vnfr_name="other")
    op = await store.get_operation(op_id)
    assert op is not None and (op.vnfr_id, op.vnfr_name) == (vnfr, "iperf-7")


async def test_finish_saves_the_vnfr_in_the_same_transaction(store: SqlStore) -> None:
    op_id, vnfr_id = unique("op"), unique("vnfr")
    await claim(store, op_id, vnfr_id=None, vnfr_name=None)
    data = {"id": vnfr_id, "name": "iperf-8", "status": "ACTIVE"}
    with pytest.raises(LeaseLost):     # not the holder: neither the outcome nor the VNFR is written
        await store.finish_operation(op_id, state=DONE, reply={"action": "INSTANTIATE"}, vnfr_id=vnfr_id,
                                     vnfr_name="iperf-8", worker="somebody-else", save_vnfr=data)
    assert await store.get_vnfr(vnfr_id) is None
    op = await store.get_operation(op_id)
    assert op is not None and op.state == RUNNING and op.reply is None
    with pytest.raises(ValueError):
        await store.finish_operation(op_id, state=DONE, reply=None, save_vnfr=data)   # whose VNFR?
    await store.finish_operation(op_id, state=DONE, reply={"action": "INSTANTIATE"}, vnfr_id=vnfr_id,
                                 vnfr_name="iperf-8", save_vnfr=data)
    assert await store.get_vnfr(vnfr_id) == data
    op = await store.get_operation(op_id)
    assert op is not None and op.state == DONE and op.vnfr_id == vnfr_id


async def test_claim_tells_whether_it_created_the_operation(store: SqlStore) -> None:
    op_id = unique("op")
    op, owned = await store.claim_operation(op_id, action="INSTANTIATE", vnfr_id=None, vnfr_name=None,
                                            request={}, worker="w1", lease_seconds=30)
    assert owned and op.created_by_claim
    again, owned = await store.claim_operation(op_id, action="INSTANTIATE", vnfr_id=None, vnfr_name=None,
                                               request={}, worker="w1", lease_seconds=30)
    assert owned and not again.created_by_claim
    assert not (await store.get_operation(op_id)).created_by_claim   # type: ignore[union-attr]


# -- VNFRs ----------------------------------------------------------------------------------------------
async def test_vnfr_json_round_trip(store: SqlStore) -> None:
    data = json.loads((FIXTURES / "vnfr_iperf_client.json").read_text())
    vnfr_id = unique("vnfr")
    data["id"] = vnfr_id
    await store.save_vnfr(vnfr_id, data["name"], data)
    assert await store.get_vnfr(vnfr_id) == data
    data["status"] = "ACTIVE"
    data["vdu"] = [{"id": "vdu-1", "vnfc_instance": [{"hostname": "ünï-0", "ips": [{"ip": "10.0.0.3"}]}]}]
    await store.save_vnfr(vnfr_id, data["name"], data)        # upsert
    assert await store.get_vnfr(vnfr_id) == data
    await store.delete_vnfr(vnfr_id)
    assert await store.get_vnfr(vnfr_id) is None
    await store.delete_vnfr(vnfr_id)                           # deleting twice is fine
    assert await store.get_vnfr(unique("none")) is None


# -- EMS registrations ----------------------------------------------------------------------------------
async def test_ems_registrations(store: SqlStore) -> None:
    hosts = [unique("host") for _ in range(3)]
    await store.record_registration(hosts[0], "generic")
    await store.record_registration(hosts[1], "generic")
    await store.record_registration(hosts[1], "other")        # again: an upsert
    assert await store.registered_hostnames(hosts) == {hosts[0], hosts[1]}
    assert await store.registered_hostnames([]) == set()
    many = [unique("h") for _ in range(1200)] + [hosts[0]]    # more than one IN chunk
    assert await store.registered_hostnames(many) == {hosts[0]}
    await store.forget_registrations([hosts[0], hosts[2]])
    await store.forget_registrations([])
    assert await store.registered_hostnames(hosts) == {hosts[1]}


# -- script logs ----------------------------------------------------------------------------------------
async def test_script_results_and_pruning(store: SqlStore) -> None:
    name = unique("vnf")
    old, new, running, failed = unique("op"), unique("op"), unique("op"), unique("op")
    for op_id in (old, new, running, failed):
        await claim(store, op_id, vnfr_name=name)
    await store.finish_operation(old, state=DONE, reply=None)
    await store.finish_operation(failed, state=FAILED, reply=None)
    await store.finish_operation(new, state=DONE, reply=None)
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=400)
    await store.record_step(step(old, "a", host="h1", vnfr_name=name, started=long_ago))
    await store.record_step(step(old, "b", host="h2", vnfr_name=name, started=long_ago + timedelta(seconds=1),
                                 status=1, error="bad"))
    await store.record_step(step(running, "r", host="h1", vnfr_name=name, started=long_ago))
    await store.record_step(step(failed, "f", host="h3", vnfr_name=name,
                                 started=long_ago + timedelta(seconds=2), status=2))
    await store.record_step(step(new, "c", host="h1", vnfr_name=name, started=now))
    await store.record_step(step(new, "d", host="h1", vnfr_name=unique("other"), started=now))

    assert [r.step_id for r in await store.script_results(vnfr_name=name)] == ["a", "r", "b", "f", "c"]
    assert [r.step_id for r in await store.script_results(vnfr_name=name, hostname="h1")] == ["a", "r", "c"]
    assert [r.step_id for r in await store.script_results(vnfr_name=name, limit=2)] == ["f", "c"]   # newest 2
    assert [r.error for r in await store.script_results(vnfr_name=name, hostname="h2")] == ["bad"]

    pruned = await store.prune_script_results(now - timedelta(days=1))
    assert pruned >= 2                                          # a and b (other tests' steps are recent)
    # a RUNNING op's steps are kept, and a FAILED op's (RESUME needs them)
    assert [r.step_id for r in await store.script_results(vnfr_name=name)] == ["r", "f", "c"]
    assert await store.prune_script_results(now - timedelta(days=1)) == 0
    assert await store.prune_script_results(datetime(2000, 1, 1)) == 0                   # naive = UTC


async def test_open_store_defaults_to_sqlite_in_the_state_dir(tmp_path: Path, db_url: str) -> None:
    state = tmp_path / "state" / "deeper"
    s = await open_store(None, state)
    try:
        assert s.dialect == "sqlite" and (state / "gvnfm.db").exists()
        op_id = unique("op")
        assert (await claim(s, op_id))[1]
    finally:
        await s.close()
    s2 = await open_store(db_url, tmp_path)
    try:
        assert s2.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    finally:
        await s2.close()
