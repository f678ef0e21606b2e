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
                operation_id=op, step_id="INSTANTIATE/0/web-1234567", action="EXECUTE", event="INSTANTIATE",
                script_index=0, script="install.sh", hostname="web-1234567", vnfr_name="web", status=0, output=out,
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


async def test_operations_with_their_script_runs_in_the_order_they_finished(tmp_path: Path) -> None:
    """``GET /api/v1/operations?steps=true`` (the web page's operations): script runs only, no deliveries."""
    from datetime import timedelta

    from gvnfm.local.history import operations

    store = await open_store(None, tmp_path)
    try:
        t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        await store.claim_operation("op", action="SCALE_OUT", vnfr_id="v1", vnfr_name="app", request={},
                                    worker="w", lease_seconds=30)
        for step_id, action, index, script, host, status, start, took in (
                ("deliver/app-2", "SAVE_SCRIPTS", -1, "", "app-2", 0, 0.0, 0.1),           # a delivery: left out
                ("INSTANTIATE/0/app-1", "EXECUTE", 0, "install.sh", "app-1", 0, 0.0, 3.0),  # finishes last
                ("INSTANTIATE/0/app-2", "EXECUTE", 0, "install.sh", "app-2", 5, 0.5, 1.0)):
            await store.record_step(StepResult(
                operation_id="op", step_id=step_id, action=action, event="INSTANTIATE", script_index=index,
                script=script, hostname=host, vnfr_name="app", status=status, output="", error="", duration=took,
                started_at=t0 + timedelta(seconds=start)))
        nsr = NetworkServiceRecord(name="svc", status="ACTIVE")
        nsr.vnfrs["app"] = VnfrState(name="app", status="ACTIVE", vnfr={"id": "v1", "name": "app"})
        (plain,) = await operations(store, nsr)
        (op,) = await operations(store, nsr, steps=True)
    finally:
        await store.close()
    assert "steps" not in plain and op["state"] == "RUNNING" and op["ended_at"] is None
    assert op["steps"] == [
        {"hostname": "app-2", "event": "INSTANTIATE", "script": "install.sh", "exit_status": 5, "duration": 1.0},
        {"hostname": "app-1", "event": "INSTANTIATE", "script": "install.sh", "exit_status": 0, "duration": 3.0}]
