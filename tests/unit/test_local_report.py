"""`gvnfm up --report`: the script runs of this network service only, with their outcome and timing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
from gvnfm.orchestrator.records import NetworkServiceRecord, VnfrState
from gvnfm.store.api import DONE, StepResult
from gvnfm.store.sql import open_store


async def test_runs_of_an_earlier_service_with_the_same_names_are_not_reported(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path)
    try:
        started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        for op, vnfr_id, out in (("old-op", "old-vnfr", "earlier run"), ("new-op", "new-vnfr", "this run")):
            await store.claim_operation(op, action="INSTANTIATE", vnfr_id=vnfr_id, vnfr_name="web", request={},
                                        worker="w", lease_seconds=30)
            await store.record_step(StepResult(
                operation_id=op, step_id="INSTANTIATE/0/web-1234567", event="INSTANTIATE", script_index=0,
                script="install.sh", hostname="web-1234567", vnfr_name="web", status=0, output=out,
                error="warning: slow\n", started_at=started, duration=0.123456))
            await store.finish_operation(op, state=DONE, reply=None)
        nsr = NetworkServiceRecord(name="svc", status="TERMINATED")
        nsr.vnfrs["web"] = VnfrState(name="web", status="TERMINATED", vnfr={
            "id": "new-vnfr", "name": "web",
            "vdu": [{"vnfc_instance": [{"hostname": "web-1234567", "state": "TERMINATED"}]}]})
        runtime = LocalRuntime(RuntimeOptions(state_dir=tmp_path))
        runtime.store = store
        report = await runtime.report(nsr)
    finally:
        await store.close()
    (vnfc,) = report["vnfrs"][0]["vnfc"]
    assert vnfc["state"] == "TERMINATED"
    assert vnfc["scripts"] == [{"event": "INSTANTIATE", "script": "install.sh", "exit_status": 0,
                                "stdout": "this run", "stderr": "warning: slow\n",
                                "started_at": started.isoformat(), "duration": 0.1235}]
