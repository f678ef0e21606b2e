"""Operation history of a local deployment: the VNFM's lifecycle operations of one NSR's VNFRs, as
``gvnfm ops`` and ``GET /api/v1/operations`` show them. Read from the VNFM's store, which keeps
every operation (finished ones too) with its state and error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gvnfm.orchestrator.records import NetworkServiceRecord
from gvnfm.store.api import Operation, StepResult, Store

#: operation states that are final (the operation's ``updated_at`` is then its end)
RUNNING = "RUNNING"


def operation_row(op: Operation, vnfr: str) -> dict[str, Any]:
    """One operation as the API shows it (no I/O)."""
    ended = op.state != RUNNING
    return {"id": op.id, "action": op.action, "vnfr": vnfr, "state": op.state,
            "started_at": op.created_at.isoformat(), "ended_at": op.updated_at.isoformat() if ended else None,
            "error": op.error}


def step_row(step: StepResult) -> dict[str, Any]:
    """One script run of an operation, as ``GET /api/v1/operations?steps=true`` shows it (no I/O)."""
    return {"hostname": step.hostname, "event": step.event, "script": step.script, "exit_status": step.status,
            "duration": round(step.duration, 4)}


async def operations(store: Store, nsr: NetworkServiceRecord, vnfr: str | None = None, *,
                     steps: bool = False) -> list[dict[str, Any]]:
    """The NSR's operations (of the VNFR ``vnfr`` only, when given), oldest first; with ``steps``, each
    with its script runs so far (deliveries and other EMS commands left out)."""
    rows: list[tuple[Any, dict[str, Any]]] = []
    for name, state in nsr.vnfrs.items():
        if vnfr is not None and name != vnfr:
            continue
        vnfr_id = (state.vnfr or {}).get("id")
        if not vnfr_id:
            continue
        for op in await store.list_operations(vnfr_id=vnfr_id, limit=100_000):
            row = operation_row(op, name)
            if steps:
                done = await store.steps(op.id)
                row["steps"] = [step_row(st) for st in sorted(done, key=lambda st: st.started_at + timedelta(
                    seconds=st.duration)) if st.is_script_run]
            rows.append((op.created_at, row))
    return [row for _, row in sorted(rows, key=lambda r: r[0])]
