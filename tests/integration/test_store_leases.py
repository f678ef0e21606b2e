"""Writes conditional on holding an operation's lease, and the lookup of id-less operations, on a
SQLite file and on the real PostgreSQL (a database of its own per module)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update

from gvnfm.store.api import DONE, FAILED, RUNNING, LeaseLost, Operation, OperationContext
from gvnfm.store.sql import OperationNotFound, SqlStore
from gvnfm.store.tables import operations
from tests.support.services import unique


async def claim(s: SqlStore, op_id: str, worker: str, lease: float = 30.0) -> tuple[Operation, bool]:
    return await s.claim_operation(op_id, action="INSTANTIATE", vnfr_id=None, vnfr_name=None,
                                   request={"action": "INSTANTIATE"}, worker=worker, lease_seconds=lease)


async def test_only_the_lease_holder_finishes_or_sets_the_context(store: SqlStore) -> None:
    op_id = unique("op")
    assert (await claim(store, op_id, "w1", lease=0.2))[1]
    await store.set_context(op_id, OperationContext(allocated={"n": 1}), worker="w1")
    with pytest.raises(LeaseLost):
        await store.set_context(op_id, OperationContext(allocated={"n": 2}), worker="w2")
    with pytest.raises(LeaseLost):
        await store.finish_operation(op_id, state=DONE, reply={"action": "X"}, worker="w2")
    await asyncio.sleep(0.3)
    assert (await claim(store, op_id, "w2"))[1]                 # w1 looked dead: w2 took it over
    # w1 comes back: neither its context nor its outcome is written
    with pytest.raises(LeaseLost):
        await store.set_context(op_id, OperationContext(allocated={"n": 3}), worker="w1")
    with pytest.raises(LeaseLost, match="RUNNING under 'w2'"):
        await store.finish_operation(op_id, state=FAILED, reply={"action": "ERROR"}, error="w1", worker="w1")
    op = await store.get_operation(op_id)
    assert op is not None and (op.state, op.worker, op.context, op.reply) == (
        RUNNING, "w2", OperationContext(allocated={"n": 1}), None)
    await store.finish_operation(op_id, state=DONE, reply={"action": "INSTANTIATE"}, worker="w2")
    # finished: nobody's conditional write goes through any more, the holder's neither
    for worker in ("w1", "w2"):
        with pytest.raises(LeaseLost, match="DONE"):
            await store.finish_operation(op_id, state=FAILED, reply=None, worker=worker)
        with pytest.raises(LeaseLost):
            await store.set_context(op_id, OperationContext(), worker=worker)
    op = await store.get_operation(op_id)
    assert op is not None and (op.state, op.reply, op.lease_until) == (DONE, {"action": "INSTANTIATE"}, None)
    # without a worker the write is unconditional (RESUME closes a FAILED operation of another worker)
    await store.finish_operation(op_id, state=DONE, reply={"action": "INSTANTIATE"}, error="resumed by r")
    assert (await store.get_operation(op_id)).error == "resumed by r"  # type: ignore[union-attr]
    missing = unique("missing")
    with pytest.raises(OperationNotFound):
        await store.finish_operation(missing, state=DONE, reply=None, worker="w1")
    with pytest.raises(OperationNotFound):
        await store.set_context(missing, OperationContext(), worker="w1")


async def test_concurrent_finishes_of_two_workers_one_wins(store: SqlStore) -> None:
    op_id = unique("op")
    await claim(store, op_id, "w1")
    results = await asyncio.gather(
        *(store.finish_operation(op_id, state=DONE, reply={"by": w}, worker=w) for w in ("w1", "w2", "w3")),
        return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType", "LeaseLost", "LeaseLost"]
    assert (await store.get_operation(op_id)).reply == {"by": "w1"}  # type: ignore[union-attr]


async def test_latest_operation_prefers_running_then_unanswered_then_newest(store: SqlStore) -> None:
    prefix = f"nocid:{unique('d')}:"
    assert await store.latest_operation(prefix) is None
    ids = [f"{prefix}{i}" for i in range(4)]
    for op_id in ids:
        await claim(store, op_id, "w1")
        await asyncio.sleep(0.01)                 # distinct creation times
    await claim(store, f"{prefix[:-1]}x:other", "w1")   # another digest that shares a prefix of it
    for op_id in ids:
        await store.finish_operation(op_id, state=DONE, reply={"id": op_id}, worker="w1")
        await store.mark_replied(op_id)

    async def latest() -> Any:
        op = await store.latest_operation(prefix)
        return None if op is None else op.id

    assert await latest() == ids[3]                       # all answered: the newest
    async with store.engine.begin() as conn:              # ids[1] was never answered
        await conn.execute(update(operations).where(operations.c.id == ids[1]).values(replied=False))
    assert await latest() == ids[1]
    await claim(store, f"{prefix}9", "w2")                 # a RUNNING one comes first
    assert await latest() == f"{prefix}9"
    # LIKE wildcards in the prefix are taken literally
    assert await store.latest_operation("nocid:%") is None
    assert await store.latest_operation("nocid_") is None
