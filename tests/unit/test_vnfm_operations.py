"""VNFM operations end to end over the in-memory transport (scripted NFVO and EMSs): SCALE_OUT and
SCALE_IN under RESUME, what RESUME skips, ad-hoc EXECUTE per VNFC, the ERROR action, an NFVO that
refuses ALLOCATE_RESOURCES, and the user-data's versions."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import gvnfm
from gvnfm.catalogue import userdata
from gvnfm.catalogue.messages import parse_nfvo_message
from gvnfm.catalogue.scripts import Script
from gvnfm.store.api import DONE, FAILED, RUNNING
from gvnfm.store.tables import operations
from gvnfm.transport import Delivery
from gvnfm.vnfm.operations import OperationState
from gvnfm.vnfm.settings import load_settings
from tests.support.fakes import RefusingNfvo
from tests.support.harness import Harness, instantiate_msg


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path) as harness:
        yield harness


def hostnames(vnfr: dict[str, Any]) -> list[str]:
    return [i["hostname"] for vdu in vnfr["vdu"] for i in vdu.get("vnfc_instance") or []]


async def until(predicate: Any, timeout: float = 60.0) -> None:
    """Wait for ``await predicate()`` (the timeout is a hang guard, not a time bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def async_replies(h: Harness) -> list[dict[str, Any]]:
    """What the VNFM sends to ``vnfm.nfvo.actions`` (answers to messages without reply_to)."""
    got: list[dict[str, Any]] = []

    async def on_message(delivery: Delivery) -> None:
        got.append(json.loads(delivery.message.body))
        await delivery.ack()

    await h.nfvo_t.consume("vnfm.nfvo.actions", on_message)
    return got


async def answered(replies: list[dict[str, Any]]) -> bool:
    return bool(replies)


async def operation_of(h: Harness, cid: str) -> Any:
    """The operation of the message sent with correlation id ``cid`` (its id starts with it)."""
    ops = [op for op in await h.store.list_operations(limit=1000) if op.id == cid or op.id.startswith(f"{cid}:")]
    return ops[0] if ops else None


async def finished(h: Harness, cid: str) -> Any:
    async def done() -> bool:
        op = await operation_of(h, cid)
        return op is not None and op.state in (DONE, FAILED)

    await until(done)
    return await operation_of(h, cid)


# -- SCALE_OUT / SCALE_IN under RESUME ---------------------------------------------------------------
@pytest.mark.parametrize("failing,answer", [("start.sh", "START"), ("install-srv.sh", "INSTANTIATE")])
async def test_resume_of_a_failed_scale_out_finishes_it_on_the_new_vnfc(h: Harness, failing: str, answer: str) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    first = hostnames(vnfr)
    original_add = h.ems.add_host

    async def add_host(hostname: str, endpoint: str = "generic", register: bool = True) -> None:
        h.ems.fail[f"{failing}@{hostname}"] = (2, "port in use")     # fails on the new VNFC only
        await original_add(hostname, endpoint, register)

    h.ems.add_host = add_host  # type: ignore[method-assign]
    h.ems.commands.clear()
    failed = await h.call({"action": "SCALE_OUT", "component": vnfr["vdu"][0]["vnfc"][0],
                           "virtualNetworkFunctionRecord": vnfr, "extension": {"brokerIp": "127.0.0.1"}})
    assert failed["action"] == "ERROR" and "port in use" in failed["exception"]["detailMessage"]
    [new_host] = [hn for hn in hostnames(failed["virtualNetworkFunctionRecord"]) if hn not in first]
    steps = [(new_host, "install.sh"), (new_host, "install-srv.sh"), (new_host, "start.sh")]
    upto = [p for _, p in steps].index(failing) + 1
    assert [(hn, c["payload"]) for hn, c in h.ems.commands if c["action"] == "EXECUTE"] == steps[:upto]

    # the NFVO's VNFR (what RESUME carries) already holds the new VNFC
    h.ems.fail.clear()
    h.ems.commands.clear()
    resumed = await h.call({"action": "RESUME", "vnfr": failed["virtualNetworkFunctionRecord"]})
    # as the reference: the action of the event that failed (INSTANTIATE or START), never SCALED (the
    # NFVO has no task for it: the NSR would stay RESUMING)
    assert resumed["action"] == answer, resumed
    assert resumed.get("vnfcInstance") is None
    [inst] = [i for i in resumed["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]
              if i["hostname"] == new_host]
    assert inst["state"] == "ACTIVE"
    assert [(hn, c["action"], c.get("payload")) for hn, c in h.ems.commands] == [
        (hn, "EXECUTE", p) for hn, p in steps[upto - 1:]]
    assert [r["action"] for r in h.nfvo.requests].count("SCALING") == 1     # no second VM
    assert sorted(hostnames(resumed["virtualNetworkFunctionRecord"])) == sorted([*first, new_host])


async def test_resume_of_a_failed_scale_in_gets_an_answer(h: Harness) -> None:
    replies = await async_replies(h)
    msg = instantiate_msg(2)
    msg["vnfd"]["lifecycle_event"].append({"event": "SCALE_IN", "lifecycle_events": ["scale_in.sh"]})
    vnfr = (await h.call(msg))["virtualNetworkFunctionRecord"]
    a, b = hostnames(vnfr)
    removed = {"id": "gone-1", "hostname": "db-7654321", "ips": [{"netName": "private", "ip": "10.9.9.9"}]}
    h.ems.fail[f"scale_in.sh@{b}"] = (1, "cannot reach the pool")
    h.ems.commands.clear()
    await h.nfvo_t.publish("generic", json.dumps({"action": "SCALE_IN", "virtualNetworkFunctionRecord": vnfr,
                                                  "vnfcInstance": removed}).encode(), correlation_id="scale-in-f")
    op = await finished(h, "scale-in-f")
    assert op.state == FAILED
    await until(lambda: answered(replies))
    assert replies[0]["action"] == "ERROR"                 # a failed SCALE_IN is reported (asynchronously)
    assert sorted(hn for hn, _ in h.ems.commands) == sorted([a, b])

    del h.ems.fail[f"scale_in.sh@{b}"]
    h.ems.commands.clear()
    resumed = await h.call({"action": "RESUME", "vnfr": replies[0]["virtualNetworkFunctionRecord"]})
    assert resumed["action"] == "ERROR", resumed          # SCALE_IN has no answer: RESUME answers ERROR
    assert "SCALE_IN" in resumed["exception"]["detailMessage"]
    assert "completed" in resumed["exception"]["detailMessage"]
    [(host, cmd)] = h.ems.commands                        # only where it failed, removing_* kept
    assert host == b and cmd["payload"] == "scale_in.sh"
    assert cmd["env"]["removing_hostname"] == "db-7654321" and cmd["env"]["removing_private"] == "10.9.9.9"
    again = await h.call({"action": "RESUME", "vnfr": resumed["virtualNetworkFunctionRecord"]})
    assert "Resume is allowed only" in again["exception"]["detailMessage"]


# -- what RESUME continues ------------------------------------------------------------------------------
async def test_resume_skips_adhoc_execute_and_script_update_failures(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    _, b = hostnames(vnfr)
    h.ems.fail[f"start.sh@{b}"] = (1, "no config")
    started = await h.call({"action": "START", "virtualNetworkFunctionRecord": vnfr})
    assert started["action"] == "ERROR"
    vnfr = started["virtualNetworkFunctionRecord"]
    # newer failures: an ad-hoc script and a script update
    h.ems.fail["ob_runtime_script"] = (3, "boom")
    executed = await h.call({"action": "EXECUTE", "vnfr": vnfr,
                             "script": {"name": "ob_runtime_script", "payload": list(b"false")}})
    assert executed["action"] == "ERROR"
    update = Script(name="start.sh", payload=b"fixed")
    h.ems.fail[update.payload_base64()] = (1, "disk full")
    updated = await h.call({"action": "UPDATE", "vnfr": vnfr,
                            "script": {"name": "start.sh", "payload": list(b"fixed")}})
    assert updated["action"] == "ERROR" and "disk full" in updated["exception"]["detailMessage"]

    h.ems.fail.clear()
    h.ems.commands.clear()
    resumed = await h.call({"action": "RESUME", "vnfr": vnfr})
    assert resumed["action"] == "START", resumed           # the START failure, not the newer ones
    assert [(hn, c["action"], c.get("payload")) for hn, c in h.ems.commands] == [(b, "EXECUTE", "start.sh")]
    again = await h.call({"action": "RESUME", "vnfr": resumed["virtualNetworkFunctionRecord"]})
    assert "Resume is allowed only" in again["exception"]["detailMessage"]


async def test_a_rerun_resume_continues_the_chain_it_had_already_closed(h: Harness) -> None:
    """A worker dies after RESUME marked the failed operation DONE but before the RESUME itself was
    finished: the worker taking it over must still answer the resumed action, running nothing again."""
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    _, b = hostnames(vnfr)
    h.ems.fail[f"start.sh@{b}"] = (1, "no config")
    vnfr = (await h.call({"action": "START", "virtualNetworkFunctionRecord": vnfr}))["virtualNetworkFunctionRecord"]
    h.ems.fail.clear()
    resume = {"action": "RESUME", "vnfr": vnfr}
    assert (await h.call(resume))["action"] == "START"
    resume_op = next(op for op in await h.store.list_operations(limit=100) if op.action == "RESUME")
    failed_op = await h.store.get_operation(resume_op.context.resumes or "")
    assert failed_op is not None and failed_op.state == DONE          # the chain is closed
    async with h.store.engine.begin() as conn:   # as it was when the worker died: still RUNNING
        await conn.execute(update(operations).where(operations.c.id == resume_op.id).values(state=RUNNING))
    h.ems.commands.clear()
    done = {s.step_id for s in await h.store.steps(resume_op.id) if s.status == 0}
    again = await h.service.operations.handle(
        parse_nfvo_message(resume),
        OperationState(op_id=resume_op.id, done=done, context=resume_op.context.model_copy(deep=True)))
    assert again is not None and again.action == "START", again
    assert h.ems.commands == []                                     # nothing ran twice


# -- ad-hoc EXECUTE -------------------------------------------------------------------------------------
async def test_execute_runs_on_every_vnfc_and_reports_each(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(3)))["virtualNetworkFunctionRecord"]
    a, b, c = hostnames(vnfr)
    script = {"name": "probe.sh", "payload": list(b"uptime")}
    h.ems.commands.clear()
    ok = await h.call({"action": "EXECUTE", "vnfr": vnfr, "script": script})
    assert ok["action"] == "EXECUTE"
    assert ok["scriptResults"] == [{"hostname": hn, "action": "EXECUTE", "status": 0, "output": "ran probe.sh",
                                    "err": ""} for hn in (a, b, c)]
    assert [hn for hn, cmd in h.ems.commands if cmd["action"] == "EXECUTE"] and \
        next(cmd for _, cmd in h.ems.commands if cmd["action"] == "EXECUTE")["env"]["hostname"] in (a, b, c)

    # the script fails on b, and cannot even be saved on c: a still runs it, every VNFC is reported
    h.ems.fail[f"probe.sh@{b}"] = (4, "no such file")
    h.ems.fail[f"{Script(name='probe.sh', payload=b'uptime').payload_base64()}@{c}"] = (1, "read-only fs")
    h.ems.commands.clear()
    bad = await h.call({"action": "EXECUTE", "vnfr": vnfr, "script": script})
    assert bad["action"] == "ERROR"
    assert bad["scriptResults"] == [
        {"hostname": a, "action": "EXECUTE", "status": 0, "output": "ran probe.sh", "err": ""},
        {"hostname": b, "action": "EXECUTE", "status": 4, "output": "ran probe.sh", "err": "no such file"},
        {"hostname": c, "action": "SAVE_SCRIPTS", "status": 1, "output": bad["scriptResults"][2]["output"],
         "err": "read-only fs"}]
    assert sorted(hn for hn, cmd in h.ems.commands if cmd["action"] == "EXECUTE") == sorted([a, b])
    text = bad["exception"]["detailMessage"]
    assert "failed on 2 of 3 VNFC(s)" in text and b in text and c in text and a not in text
    assert bad["exception"]["cause"]["detailMessage"] == "no such file"
    assert bad["nsrId"] == "nsr-1"
    # an ad-hoc script's failure says nothing about the VNFCs' state
    assert {i["state"] for i in bad["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]} == {"ACTIVE"}


async def test_a_rerun_execute_reports_the_vnfcs_done_before(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    msg = {"action": "EXECUTE", "vnfr": vnfr, "script": {"name": "probe.sh", "payload": list(b"uptime")}}
    first = await h.call(msg, cid="exec-1")
    # a re-run (a redelivery after a crash) skips the steps recorded as done and reports them from the store
    op = await operation_of(h, "exec-1")
    done = {s.step_id for s in await h.store.steps(op.id) if s.status == 0}
    n = len(h.ems.commands)
    rerun = OperationState(op_id=op.id, done=done, context=op.context.model_copy(deep=True))
    again = await h.service.operations.handle(parse_nfvo_message(msg), rerun)
    assert again is not None and again.to_wire()["scriptResults"] == first["scriptResults"]
    assert len(h.ems.commands) == n


# -- the ERROR action, NFVO refusals ----------------------------------------------------------------
async def test_error_action_runs_error_scripts_and_its_null_answer_needs_a_reply_to(h: Harness) -> None:
    replies = await async_replies(h)
    msg = instantiate_msg(2)
    msg["vnfd"]["lifecycle_event"].append({"event": "ERROR", "lifecycle_events": ["on_error.sh"]})
    vnfr = (await h.call(msg))["virtualNetworkFunctionRecord"]
    h.ems.commands.clear()
    await h.nfvo_t.publish("generic", json.dumps({"action": "ERROR", "vnfr": vnfr, "message": "NSR failed"}).encode(),
                           correlation_id="error-1")
    op = await finished(h, "error-1")
    assert op.state == DONE and op.reply == {}      # the answer null, stored
    assert sorted((hn, c["payload"]) for hn, c in h.ems.commands) == sorted(
        (hn, "on_error.sh") for hn in hostnames(vnfr))
    assert h.ems.commands[0][1]["env"]["port"] == "5001"
    # failing ERROR scripts are swallowed; without reply_to a null answer has nowhere to go: none sent
    h.ems.fail["on_error.sh"] = (1, "oops")
    await h.nfvo_t.publish("generic", json.dumps({"action": "ERROR", "vnfr": vnfr, "message": "again"}).encode(),
                           correlation_id="error-2")
    assert (await finished(h, "error-2")).state == DONE
    # the barrier: a marker sent to the same queue now comes after anything the VNFM sent there
    await h.nfvo_t.publish("vnfm.nfvo.actions", json.dumps({"action": "MARKER"}).encode(), exchange="")
    await until(lambda: answered([r for r in replies if r == {"action": "MARKER"}]))
    assert replies == [{"action": "MARKER"}]


async def test_nfvo_refusing_allocate_resources_ends_with_its_error(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.nfvo = RefusingNfvo(h.nfvo_t, h.ems, refuse={"ALLOCATE_RESOURCES": "No VIM could create the VMs"})
    async with h:
        reply = await h.call(instantiate_msg(2), cid="inst-refused")
        assert reply["action"] == "ERROR"
        assert "No VIM could create the VMs" in reply["exception"]["detailMessage"]
        assert reply["virtualNetworkFunctionRecord"]["status"] == "ERROR"   # the NFVO's record, with its ids
        assert reply["virtualNetworkFunctionRecord"]["hbVersion"] == 1
        assert [r["action"] for r in h.nfvo.requests] == ["GRANT_OPERATION", "ALLOCATE_RESOURCES"]
        assert h.ems.commands == []
        op = await operation_of(h, "inst-refused")
        assert op is not None and op.state == FAILED and op.context.allocated is None
        resumed = await h.call({"action": "RESUME", "vnfr": reply["virtualNetworkFunctionRecord"]})
        assert "Resume is allowed only" in resumed["exception"]["detailMessage"]


# -- user-data versions ----------------------------------------------------------------------------------
async def test_userdata_keeps_ems_version_apart_from_the_gvnfm_package(tmp_path: Path) -> None:
    props = tmp_path / "vnfm.properties"
    props.write_text("vnfm.ems.version=1.2.2\n")
    settings = load_settings(props, environ={})
    assert settings.ems_version == "1.2.2" and settings.ems_package_version == gvnfm.__version__
    assert load_settings(props, environ={"GVNFM_EMS_PACKAGE_VERSION": "0.0.9"}).ems_package_version == "0.0.9"
    async with Harness(tmp_path / "h", ems_version=settings.ems_version) as h:
        assert (await h.call(instantiate_msg(1)))["action"] == "INSTANTIATE"
        text = h.nfvo.requests[1]["userdata"]
    values = userdata.parse(text)
    assert values["EMS_VERSION"] == "1.2.2" and values["GVNFM_VERSION"] == gvnfm.__version__
    install = next(line for line in text.splitlines() if "pip install" in line)
    assert "GVNFM_VERSION" in install and "EMS_VERSION" not in install


def test_the_rendered_userdata_is_valid_shell_and_may_leave_the_version_open() -> None:
    boot = userdata.EmsBootstrap("10.0.0.1", 5672, "u", "p w'd", ems_version="1.2.2", package_version="")
    text = userdata.set_hostname(userdata.render(boot), "web-1234567")
    assert subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0
    values = userdata.parse(text)
    assert values["GVNFM_VERSION"] == "" and values["EMS_VERSION"] == "1.2.2" and values["PASSWORD"] == "p w'd"
