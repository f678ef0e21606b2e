"""last_failed_operation skips operations marked not resumable (ad-hoc EXECUTE, SCRIPTS_UPDATE), on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gvnfm.store.api import DONE, FAILED, OperationContext, StepResult
from gvnfm.store.sql import SqlStore
from tests.support.services import unique


async def test_not_resumable_failures_are_skipped(store: SqlStore) -> None:
    vnfr = unique("vnfr")

    async def failed_op(action: str, context: OperationContext | None) -> str:
        op_id = unique("op")
        await store.claim_operation(op_id, action=action, vnfr_id=vnfr, vnfr_name="iperf", request={"action": action},
                                    worker="w1", lease_seconds=30)
        await store.record_step(StepResult(operation_id=op_id, step_id="s0", action="EXECUTE", event=action,
                                           script_index=0, script="x.sh", hostname="h-1", vnfr_name="iperf",
                                           status=1, output="", error="bad", started_at=datetime.now(UTC),
                                           duration=0.1))
        if context is not None:
            await store.set_context(op_id, context)
        await store.finish_operation(op_id, state=FAILED, reply={"action": "ERROR"})
        await asyncio.sleep(0.01)                     # distinct created_at
        return op_id

    start = await failed_op("START", OperationContext(scaled_vnfc="other"))
    await failed_op("EXECUTE", OperationContext(resumable=False))
    await failed_op("UPDATE", OperationContext(resumable=False))
    found = await store.last_failed_operation(vnfr)
    assert found is not None and found.id == start
    resumable_again = await failed_op("MODIFY", OperationContext(resumable=True))
    assert (await store.last_failed_operation(vnfr)).id == resumable_again   # type: ignore[union-attr]
    await store.finish_operation(resumable_again, state=DONE, reply=None)
    await store.finish_operation(start, state=DONE, reply=None)
    assert await store.last_failed_operation(vnfr) is None
