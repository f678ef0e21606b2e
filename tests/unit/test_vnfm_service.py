"""The VNFM service over the in-memory transport, with a scripted NFVO and scripted EMSs."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gvnfm.store.api import LeaseLost, OperationContext
from gvnfm.store.tables import operations
from gvnfm.transport import Delivery, Message
from gvnfm.vnfm.operations import OperationState
from gvnfm.vnfm.service import operation_key
from tests.support import harness
from tests.support.harness import Harness, instantiate_msg, vnfd

h = harness.h      # the fixture


async def test_registers_with_the_nfvo_and_instantiates(h: Harness) -> None:
    assert h.nfvo.registered[0]["action"] == "register"
    assert h.nfvo.registered[0]["vnfmManagerEndpoint"]["endpoint"] == "generic"
    reply = await h.call(instantiate_msg(2))
    assert reply["action"] == "INSTANTIATE", reply
    vnfr = reply["virtualNetworkFunctionRecord"]
    hosts = [i["hostname"] for i in vnfr["vdu"][0]["vnfc_instance"]]
    assert len(hosts) == 2 and vnfr["hbVersion"] == 1 and vnfr["parent_ns_id"] == "nsr-1"
    assert [r["action"] for r in h.nfvo.requests] == ["GRANT_OPERATION", "ALLOCATE_RESOURCES"]
    assert "export BROKER_IP=127.0.0.1" in h.nfvo.requests[1]["userdata"]
    actions = [(c["action"], c.get("name") or c.get("payload")) for _, c in h.ems.commands]
    saves = [a for a in actions if a[0] == "SAVE_SCRIPTS"]
    assert len(saves) == 12
    executes = [a[1] for a in actions if a[0] == "EXECUTE"]
    # script-major: both VNFCs finish install.sh before install-srv.sh starts
    assert executes == ["install.sh", "install.sh", "install-srv.sh", "install-srv.sh"]
    assert actions.index(("EXECUTE", "install.sh")) > max(i for i, a in enumerate(actions) if a[0] == "SAVE_SCRIPTS")
    env = next(c["env"] for _, c in h.ems.commands if c["action"] == "EXECUTE")
    assert env["port"] == "5001" and env["private"].startswith("10.0.0.") and env["hostname"] in hosts


async def test_full_lifecycle_modify_start_stop_release(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    dep = {"target": "iperf-server", "idType": {"db": "client"},
           "parameters": {"client": {"parameters": {"port": "1"}}},
           "vnfcParameters": {"client": {"parameters": {"x1": {"parameters": {"private": "9.9.9.9"}}}}}}
    h.ems.commands.clear()
    reply = await h.call({"action": "MODIFY", "vnfr": vnfr, "vnfrd": dep})
    assert reply["action"] == "MODIFY"
    cmds = [c for _, c in h.ems.commands]
    assert [c["action"] for c in cmds] == ["EXECUTE", "EXECUTE", "SAVE_VNFR_DEPENDENCY", "SAVE_VNFR_DEPENDENCY",
                                           "EXECUTE", "EXECUTE"]
    assert cmds[0]["env"]["client_private"] == "9.9.9.9" and cmds[0]["env"]["client_port"] == "1"
    assert "client_private" not in cmds[4]["env"]
    h.ems.commands.clear()
    inst = vnfr["vdu"][0]["vnfc_instance"][1]
    reply = await h.call({"action": "STOP", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": inst})
    assert reply["action"] == "STOP" and reply["vnfcInstance"]["id"] == inst["id"]
    assert h.ems.commands == []   # no STOP event: nothing runs
    reply = await h.call({"action": "START", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": inst})
    assert [(hn, c["payload"]) for hn, c in h.ems.commands] == [(inst["hostname"], "start.sh")]
    h.ems.commands.clear()
    reply = await h.call({"action": "RELEASE_RESOURCES", "vnfr": vnfr})
    assert reply["action"] == "RELEASE_RESOURCES" and h.ems.executed() == ["stop.sh", "stop.sh"]


async def test_not_enough_resources_ends_cleanly_without_allocation(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.nfvo.capacity = 1
        reply = await h.call(instantiate_msg(2))
        assert reply["action"] == "ERROR"
        assert "Not enough resources for deploying VNFR iperf-server" in reply["exception"]["detailMessage"]
        assert [r["action"] for r in h.nfvo.requests] == ["GRANT_OPERATION"]
        assert h.ems.commands == []


async def test_script_failure_names_vnfc_event_script_and_stderr(h: Harness) -> None:
    h.ems.fail["install-srv.sh"] = (3, "iperf: command not found")
    reply = await h.call(instantiate_msg(2))
    assert reply["action"] == "ERROR"
    text = reply["exception"]["detailMessage"]
    assert "install-srv.sh" in text and "INSTANTIATE" in text and "iperf: command not found" in text
    instances = reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]
    failed_hosts = [i for i in instances if i["state"] == "error"]
    assert len(failed_hosts) == 1 and failed_hosts[0]["hostname"] in text
    assert reply["nsrId"] == "nsr-1"


async def test_bad_input_gets_an_error_reply_and_the_service_keeps_serving(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    no_vdu = {"action": "START", "virtualNetworkFunctionRecord": {"name": "x", "vdu": []}}
    bad_field = {"action": "MODIFY", "vnfr": {"name": "x", "vdu": []}, "vnfrd": {"parameters": 5}}
    for body, needle in [(json.dumps(no_vdu).encode(), "no VNFC instances"),
                         (json.dumps(bad_field).encode(), "malformed MODIFY")]:
        reply = await h.call(body)
        assert reply["action"] == "ERROR" and needle in reply["exception"]["detailMessage"], (needle, reply)
        assert reply["virtualNetworkFunctionRecord"]["name"] == "x"
    # no VNFR to put in an ERROR (the NFVO's ErrorTask fails on a null one): the answer is null
    for body, needle in [(b"{oops", "not valid JSON"), (b'{"action": "DANCE"}', "unknown action"),
                         (json.dumps({**instantiate_msg(), "vnfd": {**vnfd(), "vdu": []}}).encode(), "has no VDU")]:
        raw = await h.nfvo_t.rpc("generic", body, timeout=10)
        assert raw == b"null", (needle, raw)
        assert needle in caplog.text
    assert "event=message_refused" in caplog.text
    assert (await h.call(instantiate_msg(1)))["action"] == "INSTANTIATE"


async def test_a_record_the_plan_cannot_use_is_refused_naming_what_is_wrong(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    no_vnfc = {**vnfr, "vdu": [{**vnfr["vdu"][0], "name": "web-vdu", "vnfc_instance": []}]}
    cases = [(no_vnfc, "none of its VDUs ('web-vdu') has a VNFC instance")]
    for hostname, shown in [("", "''"), (None, "null"), ("  ", "'  '")]:
        inst = {**vnfr["vdu"][0]["vnfc_instance"][0], "hostname": hostname}
        cases.append(({**vnfr, "vdu": [{**vnfr["vdu"][0], "vnfc_instance": [inst]}]},
                      f"has no usable hostname (hostname is {shown})"))
    for action in ("START", "MODIFY", "RELEASE_RESOURCES"):
        for record, needle in cases if action != "RELEASE_RESOURCES" else cases[1:]:   # nothing to release: fine
            field = "virtualNetworkFunctionRecord" if action == "START" else "vnfr"   # the Java classes' names
            reply = await h.call({"action": action, field: record})
            assert reply["action"] == "ERROR", (action, reply)
            text = reply["exception"]["detailMessage"]
            assert needle in text and "iperf-server" in text and "internal error" not in text, (action, text)


async def test_missing_ems_times_out_naming_the_hostnames(tmp_path: Path) -> None:
    async with Harness(tmp_path, ems_start_timeout=0.5) as h:
        h.nfvo.register_ems = False
        reply = await h.call(instantiate_msg(2))
        assert reply["action"] == "ERROR"
        text = reply["exception"]["detailMessage"]
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        assert "Timeout waiting for EMS" in text and all(hn in text for hn in hosts)


async def test_early_registration_is_remembered_and_matching_is_exact(h: Harness) -> None:
    await h.ems.register("web-12345")
    await eventually(lambda: h.service.registrations.is_registered("web-12345"))
    assert not h.service.registrations.is_registered("db-9123456")
    assert await h.service.registrations.wait(["web-12345"], 0.1) == []
    assert await h.service.registrations.wait(["db-9123456"], 0.1) == ["db-9123456"]


async def test_duplicate_message_runs_nothing_twice(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    msg = instantiate_msg(2)
    first = await h.call(msg, cid="op-dup-1")
    assert first["action"] == "INSTANTIATE"
    n = len(h.ems.commands)
    body = json.dumps(msg).encode()
    await h.nfvo_t.publish("generic", body, correlation_id="op-dup-1")   # same message again, no reply wanted
    # the barrier: the service has handled the duplicate (and found the operation finished)
    await eventually(lambda: f"event=duplicate_finished op={operation_key('op-dup-1', body)}" in caplog.text)
    assert len(h.ems.commands) == n
    assert [r["action"] for r in h.nfvo.requests].count("GRANT_OPERATION") == 1


async def test_vnfcs_of_a_step_run_in_parallel_within_the_bound(tmp_path: Path) -> None:
    async with Harness(tmp_path, concurrency=3) as h:
        active = 0
        peak = 0
        original = h.ems.transport.reply

        async def slow_reply(message: Any, body: bytes) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.05)
            active -= 1
            await original(message, body)

        h.ems.transport.reply = slow_reply  # type: ignore[method-assign]
        reply = await h.call(instantiate_msg(6))
        assert reply["action"] == "INSTANTIATE"
        assert peak == 3


async def test_resume_reruns_the_failed_script_only_where_it_failed(h: Harness) -> None:
    msg = instantiate_msg(3)
    # learn the hostnames: fail the 2nd script on the 2nd VNFC only
    h.ems.fail["install-srv.sh"] = (0, "")
    original_add = h.ems.add_host
    hosts: list[str] = []

    async def add_host(hostname: str, endpoint: str = "generic", register: bool = True) -> None:
        hosts.append(hostname)
        if len(hosts) == 2:
            h.ems.fail[f"install-srv.sh@{hostname}"] = (1, "bad config")
        await original_add(hostname, endpoint, register)

    h.ems.add_host = add_host  # type: ignore[method-assign]
    failed = await h.call(msg)
    assert failed["action"] == "ERROR" and hosts[1] in failed["exception"]["detailMessage"]
    # the text as it always was, and gvnfm's typed field for the same facts
    assert failed["exception"]["detailMessage"] == (f"EMS ({hosts[1]}) had the following error: script "
                                                    "'install-srv.sh' of event INSTANTIATE exited with status 1: "
                                                    "bad config")
    assert failed["failedStep"] == {"hostname": hosts[1], "action": "EXECUTE", "event": "INSTANTIATE",
                                    "script": "install-srv.sh", "status": 1}
    before = list(h.ems.commands)
    assert [hn for hn, c in before if c.get("payload") == "install-srv.sh"] and \
        sorted(hn for hn, c in before if c.get("payload") == "install-srv.sh") == sorted(hosts)
    # the operator fixes the script; RESUME continues from the failed step
    del h.ems.fail[f"install-srv.sh@{hosts[1]}"]
    h.ems.commands.clear()
    resumed = await h.call({"action": "RESUME", "vnfr": failed["virtualNetworkFunctionRecord"]})
    assert resumed["action"] == "INSTANTIATE", resumed
    assert [(hn, c["action"], c.get("payload")) for hn, c in h.ems.commands] == [
        (hosts[1], "EXECUTE", "install-srv.sh")]
    assert [r["action"] for r in h.nfvo.requests].count("ALLOCATE_RESOURCES") == 1
    again = await h.call({"action": "RESUME", "vnfr": resumed["virtualNetworkFunctionRecord"]})
    assert again["action"] == "ERROR" and "Resume is allowed only" in again["exception"]["detailMessage"]


async def test_heal_switch_to_standby_and_scale_out_in(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    vnfr["lifecycle_event"].append({"event": "SCALE_IN", "lifecycle_events": ["scale_in.sh"]})
    vnfr["lifecycle_event"].append({"event": "HEAL", "lifecycle_events": ["heal.sh"]})
    comp = vnfr["vdu"][0]["vnfc"][0]
    h.ems.commands.clear()
    scaled = await h.call({"action": "SCALE_OUT", "component": comp, "virtualNetworkFunctionRecord": vnfr,
                           "vnfPackage": {"scripts": [{"name": "start.sh", "payload": [101]}]},
                           "mode": "standby", "extension": {"brokerIp": "127.0.0.1"}})
    assert scaled["action"] == "SCALED", scaled
    new = scaled["vnfcInstance"]
    assert new["state"] == "STANDBY"
    assert [c["action"] for hn, c in h.ems.commands if hn == new["hostname"]] == [
        "SAVE_SCRIPTS", "EXECUTE", "EXECUTE"]   # no START while in standby
    vnfr = scaled["virtualNetworkFunctionRecord"]
    h.ems.commands.clear()
    healed = await h.call({"action": "HEAL", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": new,
                           "cause": "switchToStandby"})
    assert healed["action"] == "HEAL" and healed["vnfcInstance"]["state"] == "ACTIVE"
    assert [(hn, c["payload"]) for hn, c in h.ems.commands] == [(new["hostname"], "start.sh")]
    h.ems.commands.clear()
    healed = await h.call({"action": "HEAL", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": new,
                           "cause": "disk full"})
    assert h.ems.commands[0][1]["env"]["cause"] == "disk full"
    assert healed["action"] == "HEAL" and healed.get("cause") is None     # as the Java VNFM (HealTask)
    # SCALE_IN runs on the receiving VNFR's other VNFCs with removing_* and is answered null (the Java
    # VNFM's answer: the NFVO waits for one)
    h.ems.commands.clear()
    raw = await h.nfvo_t.rpc("generic", json.dumps({"action": "SCALE_IN", "virtualNetworkFunctionRecord": vnfr,
                                                    "vnfcInstance": new}).encode(), timeout=10)
    assert raw == b"null"
    others = [i["hostname"] for i in vnfr["vdu"][0]["vnfc_instance"] if i["id"] != new["id"]]
    assert others and [(hn, c["payload"]) for hn, c in h.ems.commands] == [(hn, "scale_in.sh") for hn in others]
    assert all(c["env"]["removing_hostname"] == new["hostname"] for _, c in h.ems.commands)
    assert not [c for hn, c in h.ems.commands if hn == new["hostname"]]     # the removed VNFC got nothing


async def test_update_execute_and_logs(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    h.ems.commands.clear()
    reply = await h.call({"action": "UPDATE", "vnfr": vnfr, "script": {"name": "install.sh", "payload": [49]}})
    assert reply["action"] == "UPDATE" and [c["action"] for _, c in h.ems.commands] == ["SCRIPTS_UPDATE"] * 2
    h.ems.commands.clear()
    reply = await h.call({"action": "EXECUTE", "vnfr": vnfr, "script": {"name": "ob_runtime_script",
                                                                        "payload": list(b"uptime")}})
    assert reply["action"] == "EXECUTE" and len(reply["scriptResults"]) == 2
    assert all(r["status"] == 0 for r in reply["scriptResults"])
    host = vnfr["vdu"][0]["vnfc_instance"][0]["hostname"]
    logs = await h.call({"action": "LOG_REQUEST", "vnfrName": "iperf-server", "hostname": host})
    assert logs["action"] == "LOG_REQUEST"
    assert "Output of Script : install.sh" in logs["outputLog"] and logs["errorLog"] == []


async def test_time_bounds_end_in_clear_errors(tmp_path: Path) -> None:
    async with Harness(tmp_path, operation_timeout=0.6, ems_command_timeout=5) as h:
        h.ems.delay = 0.4       # every EMS command takes 0.4 s: the whole INSTANTIATE can't fit in 0.6 s
        reply = await h.call(instantiate_msg(1))
        assert reply["action"] == "ERROR"
        assert "exceeded the operation deadline of 0.6 s" in reply["exception"]["detailMessage"]
        assert "failedStep" not in reply          # no step failed: the operation ran out of time
    async with Harness(tmp_path / "b", ems_command_timeout=0.2) as h:
        h.ems.delay = 0.5       # an EMS that does not answer a (non-script) command in time
        reply = await h.call(instantiate_msg(1))
        assert reply["action"] == "ERROR"
        assert "did not answer SAVE_SCRIPTS within 0.2 s" in reply["exception"]["detailMessage"]
        assert {k: reply["failedStep"][k] for k in ("action", "event", "status")} == {
            "action": "SAVE_SCRIPTS", "event": "DELIVER", "status": -1}


async def test_script_logs_are_pruned_after_the_retention(tmp_path: Path) -> None:
    async with Harness(tmp_path, script_log_minutes=0.0001) as h:
        vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
        host = vnfr["vdu"][0]["vnfc_instance"][0]["hostname"]
        assert (await h.call({"action": "LOG_REQUEST", "vnfrName": "iperf-server", "hostname": host}))["outputLog"]
        await asyncio.sleep(0.05)
        assert await h.service.prune_script_logs_once() > 0
        logs = await h.call({"action": "LOG_REQUEST", "vnfrName": "iperf-server", "hostname": host})
        assert logs["outputLog"] == [] and logs["errorLog"] == []


def test_settings_from_a_reference_properties_file(tmp_path: Path) -> None:
    from gvnfm.vnfm.settings import load_settings

    props = tmp_path / "openbaton-vnfm-generic.properties"
    props.write_text("vnfm.endpoint=generic-x\nvnfm.type = gtype\nvnfm.ems.start.timeout=42\n"
                     "spring.rabbitmq.host=10.1.2.3\nspring.rabbitmq.username=u\nspring.rabbitmq.password=p@ss\n"
                     "vnfm.ems.script.old=60\n# comment\nconcurrency: 8\n")
    s = load_settings(props, {"type": "flag-wins"}, environ={"GVNFM_ENDPOINT": "env-wins"})
    assert s.endpoint == "env-wins" and s.type == "flag-wins" and s.ems_start_timeout == 42
    assert s.broker == "amqp://u:p%40ss@10.1.2.3:5672/%2F"
    assert s.script_log_minutes == 60 and s.concurrency == 8


async def test_unregisters_from_the_nfvo_on_clean_shutdown(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.__aenter__()
    assert [m["action"] for m in h.nfvo.registered] == ["register"]
    await h.service.stop(grace=1)
    await eventually(lambda: len(h.nfvo.registered) == 2)
    unregister = h.nfvo.registered[-1]
    assert unregister["action"] == "unregister" and unregister["type"] == "generic"
    assert unregister["username"] == "guest" and unregister["vnfmManagerEndpoint"]["endpoint"] == "generic"
    await h.vnfm_t.close()
    await h.ems.transport.close()
    await h.nfvo_t.close()
    await h.store.close()


async def test_a_store_failure_gives_the_message_back_instead_of_losing_it(h: Harness) -> None:
    real_claim = h.store.claim_operation
    calls = 0

    async def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database is locked")
        return await real_claim(*args, **kwargs)

    h.store.claim_operation = flaky_claim  # type: ignore[method-assign]
    reply = await h.call(instantiate_msg(1), timeout=20)
    assert reply["action"] == "INSTANTIATE" and calls == 2


async def test_an_oversized_message_is_answered_null_and_logged(h: Harness, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import gvnfm.vnfm.service as service_module

    monkeypatch.setattr(service_module, "MAX_MESSAGE_BYTES", 500)
    raw = await h.nfvo_t.rpc("generic", json.dumps(instantiate_msg(1)).encode(), timeout=10)  # over 1 KB
    assert raw == b"null" and "reason=too_large" in caplog.text
    monkeypatch.setattr(service_module, "MAX_MESSAGE_BYTES", 64 * 1024 * 1024)
    assert (await h.call(instantiate_msg(1)))["action"] == "INSTANTIATE"


# -- durability: one run per operation, leases, operation keys, deadline ---------------------------------
class Delivered(Delivery):
    """A delivery handed to the service's handler directly (a redelivered copy, as the broker gives
    after a lost connection), recording how it was settled."""

    def __init__(self, body: bytes, *, cid: str | None, reply_to: str | None, redelivered: bool = False) -> None:
        self.message = Message(body=body, routing_key="generic", reply_to=reply_to, correlation_id=cid,
                               redelivered=redelivered)
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(f"reject(requeue={requeue})")


async def reply_queue(h: Harness) -> tuple[str, list[tuple[str | None, dict[str, Any]]]]:
    """A queue of the NFVO's own for replies: (correlation id, body) of every reply that reaches it."""
    name = f"replies-{uuid.uuid4().hex[:8]}"
    got: list[tuple[str | None, dict[str, Any]]] = []

    async def on_reply(delivery: Delivery) -> None:
        got.append((delivery.message.correlation_id, json.loads(delivery.message.body)))
        await delivery.ack()

    await h.nfvo_t.declare_queue(name, auto_delete=True, bind=False)
    await h.nfvo_t.consume(name, on_reply)
    return name, got


async def eventually(check: Callable[[], Any], timeout: float = 60) -> None:
    """Wait for ``check()`` (the timeout is a hang guard, not a time bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def operation_done(h: Harness, op_id: str, timeout: float = 60) -> None:
    """Wait until the stored operation ``op_id`` is finished (for actions the NFVO gets no answer to)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (op := await h.store.get_operation(op_id)) is None or op.state not in ("DONE", "FAILED"):
        if loop.time() > deadline:
            raise AssertionError(f"operation {op_id} not finished: {op}")
        await asyncio.sleep(0.02)


async def no_more_replies(h: Harness, queue: str, replies: list[tuple[str | None, dict[str, Any]]]) -> None:
    """The barrier before asserting that no (further) reply came: a marker sent to the reply queue now
    arrives after anything the service has already sent there; it is removed again."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    await h.nfvo_t.publish(queue, json.dumps({"action": "MARKER"}).encode(), correlation_id=marker, exchange="")
    await eventually(lambda: any(cid == marker for cid, _ in replies))
    replies[:] = [(cid, r) for cid, r in replies if cid != marker]


async def test_a_redelivery_of_an_operation_running_here_waits_for_it_and_is_not_answered_twice(h: Harness) -> None:
    """The broker restarted: the first delivery's handler still runs; the broker hands the message to
    the same process again, marked redelivered."""
    queue, replies = await reply_queue(h)
    h.ems.delay = 0.1
    body = json.dumps(instantiate_msg(2)).encode()
    first = Delivered(body, cid="op-restart", reply_to=queue)
    again = Delivered(body, cid="op-restart", reply_to=queue, redelivered=True)
    run = asyncio.create_task(h.service._on_nfvo_message(first))
    await eventually(lambda: len(h.ems.commands) >= 2)
    await asyncio.wait_for(asyncio.gather(run, h.service._on_nfvo_message(again)), 60)
    await no_more_replies(h, queue, replies)
    assert [(cid, r["action"]) for cid, r in replies] == [("op-restart", "INSTANTIATE")]
    assert first.settled == ["ack"] and again.settled == ["ack"]
    assert [r["action"] for r in h.nfvo.requests] == ["GRANT_OPERATION", "ALLOCATE_RESOURCES"]
    assert set(h.ems.runs.values()) == {1}        # every EMS command sent once: no second run
    (op,) = await h.store.list_operations()
    assert op.id == operation_key("op-restart", body) and op.state == "DONE" and op.replied


async def test_a_new_message_reusing_a_correlation_id_is_an_operation_of_its_own(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    inst = vnfr["vdu"][0]["vnfc_instance"][0]
    start = await h.call({"action": "START", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": inst}, cid="c-1")
    assert start["action"] == "START" and h.ems.executed() == ["install.sh", "install-srv.sh", "start.sh"]
    # the NFVO restarted and numbers its requests from 1 again: another request, another answer
    stop = await h.call({"action": "STOP", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": inst}, cid="c-1")
    assert stop["action"] == "STOP"
    logs = await h.call({"action": "LOG_REQUEST", "vnfrName": "iperf-server", "hostname": inst["hostname"]},
                        cid="c-1")
    assert logs["action"] == "LOG_REQUEST" and "Output of Script : start.sh" in logs["outputLog"]


async def test_a_duplicate_of_a_finished_operation_asking_for_an_answer_gets_the_stored_reply(h: Harness) -> None:
    msg = instantiate_msg(1)
    first = await h.call(msg, cid="dup-2")
    n = len(h.ems.commands)
    again = await h.call(msg, cid="dup-2")          # same request again, with a reply_to: answered again
    assert again == first and len(h.ems.commands) == n
    assert [r["action"] for r in h.nfvo.requests].count("GRANT_OPERATION") == 1
    # a redelivered copy (the broker's, after the reply was sent) is not answered again
    queue, replies = await reply_queue(h)
    copy = Delivered(json.dumps(msg).encode(), cid="dup-2", reply_to=queue, redelivered=True)
    await h.service._on_nfvo_message(copy)
    await no_more_replies(h, queue, replies)
    assert copy.settled == ["ack"] and replies == []


async def test_identical_messages_without_correlation_id_each_get_an_answer(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    host = vnfr["vdu"][0]["vnfc_instance"][0]["hostname"]
    queue, replies = await reply_queue(h)
    body = json.dumps({"action": "LOG_REQUEST", "vnfrName": "iperf-server", "hostname": host}).encode()
    for _ in range(2):
        await h.nfvo_t.publish("generic", body, reply_to=queue)
    await eventually(lambda: len(replies) == 2)
    assert [r["action"] for _, r in replies] == ["LOG_REQUEST", "LOG_REQUEST"]
    prefix = operation_key(None, body)
    logs: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60      # hang guard; the reply goes out before it is marked sent: wait for the marks
    while loop.time() < deadline:
        logs = [o for o in await h.store.list_operations() if o.id.startswith(prefix)]
        if len(logs) == 2 and all(o.replied for o in logs):
            break
        await asyncio.sleep(0.02)
    assert len(logs) == 2 and all(o.replied for o in logs)
    # a redelivered id-less copy belongs to the latest identical operation: answered, not run again
    copy = Delivered(body, cid=None, reply_to=queue, redelivered=True)
    await h.service._on_nfvo_message(copy)
    await no_more_replies(h, queue, replies)
    assert copy.settled == ["ack"] and len(replies) == 2
    assert len([o for o in await h.store.list_operations() if o.id.startswith(prefix)]) == 2


async def test_a_worker_that_loses_its_lease_stops_and_does_not_reply(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Harness(tmp_path, lease_seconds=1.5) as h:
        queue, replies = await reply_queue(h)
        h.ems.delay = 0.15
        body = json.dumps(instantiate_msg(3)).encode()
        op_id = operation_key("op-lease", body)
        delivery = Delivered(body, cid="op-lease", reply_to=queue)
        task = asyncio.create_task(h.service._on_nfvo_message(delivery))
        await eventually(lambda: any(c["action"] == "EXECUTE" for _, c in h.ems.commands))
        # another worker took the operation over (this one looked dead: its lease had expired)
        async with h.store.engine.begin() as conn:
            await conn.execute(update(operations).where(operations.c.id == op_id).values(
                worker="other-worker", lease_until=datetime.now(UTC) + timedelta(seconds=60)))
        await eventually(lambda: "event=lease_lost" in caplog.text)
        sent = len(h.ems.commands)
        assert not task.done() and delivery.settled == []   # waits for the holder, message kept
        # the holder finishes and answers; this worker's delivery is settled without a reply of its own
        await h.store.finish_operation(op_id, state="DONE", reply={"action": "INSTANTIATE"}, worker="other-worker")
        await h.store.mark_replied(op_id)
        await asyncio.wait_for(task, 60)
        # the barrier: this worker's handler is over; the stopped run sent at most what was in flight
        assert len(h.ems.commands) <= sent + 3
        await no_more_replies(h, queue, replies)
        assert delivery.settled == ["ack"] and replies == []
        op = await h.store.get_operation(op_id)
        assert op is not None and op.worker == "other-worker" and op.reply == {"action": "INSTANTIATE"}


async def test_context_writes_of_a_worker_without_the_lease_are_refused(h: Harness) -> None:
    body = json.dumps(instantiate_msg(1)).encode()
    await h.store.claim_operation("op-ctx", action="INSTANTIATE", vnfr_id=None, vnfr_name=None,
                                  request=json.loads(body), worker="someone-else", lease_seconds=60)
    state = OperationState(op_id="op-ctx", context=OperationContext(allocated={}))
    with pytest.raises(LeaseLost):
        await h.service.operations._save_context(state)
    assert (await h.store.get_operation("op-ctx")).context == OperationContext()  # type: ignore[union-attr]


async def test_no_ems_command_before_the_allocation_is_stored(h: Harness) -> None:
    events: list[str] = []
    set_context = h.store.set_context

    async def slow_set_context(op_id: str, context: OperationContext, **kw: Any) -> None:
        events.append(f"context-start {len(h.ems.commands)}")
        await asyncio.sleep(0.2)
        await set_context(op_id, context, **kw)
        events.append(f"context-end {len(h.ems.commands)}")

    h.store.set_context = slow_set_context  # type: ignore[method-assign]
    reply = await h.call(instantiate_msg(1))
    assert reply["action"] == "INSTANTIATE" and h.ems.commands
    assert events[:2] == ["context-start 0", "context-end 0"]   # a re-run never allocates twice


async def test_a_lost_lease_at_the_allocation_write_sends_no_ems_command(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # another worker took the operation over while this one waited for the NFVO: the allocation is
    # not written, and nothing is sent to the EMSs (the new holder allocates and runs it)
    async def taken_over(op_id: str, context: OperationContext, **kw: Any) -> None:
        raise LeaseLost(f"operation {op_id!r} is RUNNING under 'other-worker'")

    h.store.set_context = taken_over  # type: ignore[method-assign]
    queue, replies = await reply_queue(h)
    await h.nfvo_t.publish("generic", json.dumps(instantiate_msg(1)).encode(), reply_to=queue,
                           correlation_id="lost-at-allocation")
    # the barrier: the run has ended (the service logs it after the run is over)
    await eventually(lambda: "event=lease_lost" in caplog.text)
    await no_more_replies(h, queue, replies)
    assert replies == [] and h.ems.commands == []             # this worker does not answer, sends nothing


async def test_the_deadline_counts_from_the_operation_start_across_takeovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Harness(tmp_path, operation_timeout=5, lease_seconds=1) as h:
        h.ems.delay = 0.3
        for cid, age in (("op-old", 4.4), ("op-expired", 6.0)):
            msg = instantiate_msg(1)
            body = json.dumps(msg).encode()
            op_id = operation_key(cid, body)
            # a worker started the operation `age` seconds ago and died (its lease has run out)
            await h.store.claim_operation(op_id, action="INSTANTIATE", vnfr_id=None, vnfr_name=None, request=msg,
                                          worker="dead-worker", lease_seconds=0.01)
            async with h.store.engine.begin() as conn:
                await conn.execute(update(operations).where(operations.c.id == op_id).values(
                    created_at=datetime.now(UTC) - timedelta(seconds=age)))
            grants = [r["action"] for r in h.nfvo.requests].count("GRANT_OPERATION")
            started = asyncio.get_running_loop().time()
            reply = await h.call(msg, cid=cid)
            took = asyncio.get_running_loop().time() - started
            # what was left of the 5 s, not a fresh 5 s: the service's own figure, and (with a margin for a
            # slow machine) the time it took
            left = [float(line.split("remaining=")[1].rstrip("s")) for line in caplog.messages
                    if f"event=operation_start op={op_id} " in line]
            assert (left or age > 5) and all(value <= max(0.0, 5 - age) + 0.05 for value in left), left
            assert took < 4.0, took
            op = await h.store.get_operation(op_id)
            assert op is not None and op.state == "FAILED" and op.worker == h.service.worker
            assert op.error is not None and "exceeded the operation deadline of 5 s" in op.error
            if age > 5:                      # nothing left: no new work at all, and no VNFR for an ERROR: null
                assert [r["action"] for r in h.nfvo.requests].count("GRANT_OPERATION") == grants
                assert reply is None
            else:                            # the ERROR answer carries the VNFR the NFVO allocated
                assert reply["action"] == "ERROR", reply
                assert "exceeded the operation deadline of 5 s" in reply["exception"]["detailMessage"]
                assert reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]


async def test_error_is_answered_null_after_its_scripts_as_the_java_vnfm_does(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(1)))["virtualNetworkFunctionRecord"]
    vnfr["lifecycle_event"].append({"event": "ERROR", "lifecycle_events": ["on_error.sh"]})
    h.ems.commands.clear()
    # OrVnfmErrorMessage as the NFVO's ErrorTask sends it
    raw = await h.nfvo_t.rpc("generic", json.dumps({"action": "ERROR", "vnfr": vnfr,
                                                    "message": "VNFR iperf-server in ERROR"}).encode(), timeout=10)
    assert raw == b"null"
    assert h.ems.executed() == ["on_error.sh"]
    # a duplicate (the same correlation id and body) asking again gets the stored null answer
    body = json.dumps({"action": "ERROR", "vnfr": vnfr, "message": "again"}).encode()
    assert await h.nfvo_t.rpc("generic", body, timeout=10, correlation_id="err-1") == b"null"
    assert await h.nfvo_t.rpc("generic", body, timeout=10, correlation_id="err-1") == b"null"


async def test_instantiate_carrying_a_vnfr_is_the_nfvo_restart_path_and_allocates_nothing(h: Harness) -> None:
    vnfr = (await h.call(instantiate_msg(2)))["virtualNetworkFunctionRecord"]
    hosts = sorted(i["hostname"] for i in vnfr["vdu"][0]["vnfc_instance"])
    h.nfvo.requests.clear()
    h.ems.commands.clear()
    # VnfmManager.restartVnfr: getNextMessage(vnfd, ...) with the VNFR set, "so the allocate resources
    # will be skipped"; the EMSs of the existing VNFCs register again (the VMs were restarted)
    for hostname in hosts:
        await h.ems.register(hostname)
    restart = {**instantiate_msg(2), "vnfr": vnfr}
    reply = await h.call(restart)
    assert reply["action"] == "INSTANTIATE", reply
    assert h.nfvo.requests == []          # no GRANT_OPERATION, no ALLOCATE_RESOURCES
    assert sorted(i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]) == hosts
    assert reply["virtualNetworkFunctionRecord"]["id"] == vnfr["id"]
    ran = sorted((hn, c["payload"]) for hn, c in h.ems.commands if c["action"] == "EXECUTE")
    assert ran == sorted((hn, s) for hn in hosts for s in ("install.sh", "install-srv.sh"))
    # a VNFR without VNFC instances cannot be restarted: an ERROR naming it
    empty = {**vnfr, "vdu": [{**vnfr["vdu"][0], "vnfc_instance": []}]}
    reply = await h.call({**instantiate_msg(2), "vnfr": empty})
    assert reply["action"] == "ERROR" and "no VNFC instances" in reply["exception"]["detailMessage"]
    assert h.nfvo.requests == []


async def test_fifty_vnfrs_of_one_nsr_run_at_once(tmp_path: Path) -> None:
    await fifty_vnfrs_at_once(tmp_path, None)


@pytest.mark.postgres
async def test_fifty_vnfrs_of_one_nsr_run_at_once_on_postgresql(tmp_path: Path, pg_db: str) -> None:
    await fifty_vnfrs_at_once(tmp_path, pg_db)


async def fifty_vnfrs_at_once(tmp_path: Path, db_url: str | None) -> None:
    """The NFVO sends INSTANTIATE for every VNFR of an NSR at once and waits for each: all 50 must be
    running together (each one's INSTANTIATE script in flight at the same time), not 16 at a time."""
    async with Harness(tmp_path, db_url, ems_start_timeout=600) as h:
        assert h.settings.consumers >= 50
        h.ems.gate = asyncio.Event()
        all_running = asyncio.Event()
        peak = 0

        def on_running(n: int) -> None:
            nonlocal peak
            peak = max(peak, n)
            if n >= 50:
                all_running.set()

        h.ems.on_running = on_running
        msgs = []
        for i in range(50):
            msg = instantiate_msg(1)
            msg["vnfd"]["name"] = msg["vnfInstanceName"] = f"vnf-{i}"
            msg["vnfd"]["lifecycle_event"] = [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}]
            msgs.append(msg)
        calls = asyncio.gather(*(h.call(m, timeout=600) for m in msgs))
        await asyncio.wait_for(all_running.wait(), 300)      # hang guard: reached by events only
        assert peak == 50
        h.ems.gate.set()
        replies = await calls
    assert [r["action"] for r in replies] == ["INSTANTIATE"] * 50


async def test_the_lifecycle_history_is_the_nfvos_own(h: Harness) -> None:
    """The NFVO records its own lifecycle history (its tasks); the VNFM adds no entries duplicating it."""
    reply = await h.call(instantiate_msg(1))
    vnfr = reply["virtualNetworkFunctionRecord"]
    assert vnfr["lifecycle_event_history"] == []
    vnfr["lifecycle_event_history"] = [{"event": "INSTANTIATE", "description": "by the NFVO", "executedAt": "x"}]
    for msg in ({"action": "MODIFY", "vnfr": vnfr, "vnfrd": None},
                {"action": "START", "virtualNetworkFunctionRecord": vnfr},
                {"action": "STOP", "virtualNetworkFunctionRecord": vnfr}):
        answer = await h.call(msg)
        assert answer["action"] == msg["action"], answer
        assert answer["virtualNetworkFunctionRecord"]["lifecycle_event_history"] == vnfr["lifecycle_event_history"]


@pytest.mark.parametrize("reply_to,cid,marked_first", [
    ("amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAFkgAAAANrE3Ih.rFHqRsDEHL6mxAQUomsNDg==", None, True),
    ("amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAFkgAAAANrE3Ih.rFHqRsDEHL6mxAQUomsNDg==", "c-7", False),
    ("amq.gen-JzTY20BRgKO-HjmUJj0wLg", None, False),
])
async def test_a_direct_reply_to_answer_without_correlation_id_is_recorded_before_it_is_sent(
        h: Harness, reply_to: str, cid: str | None, marked_first: bool) -> None:
    """Direct reply-to names the NFVO's channel: an answer re-sent after a crash between sending and
    recording it would reach the next request on that channel. Without a correlation id it is recorded
    as sent first (at most once); otherwise it is recorded after (at least once)."""
    seen: list[bool] = []
    real_reply = h.service.transport.reply

    async def reply(message: Message, body: bytes) -> None:
        (op,) = [o for o in await h.store.list_operations() if o.action == "LOG_REQUEST"]
        seen.append(op.replied)
        await real_reply(message, body)

    h.service.transport.reply = reply  # type: ignore[method-assign]
    body = json.dumps({"action": "LOG_REQUEST", "vnfrName": "x", "hostname": "x-1"}).encode()
    first = Delivered(body, cid=cid, reply_to=reply_to)
    await h.service._on_nfvo_message(first)
    assert first.settled == ["ack"] and seen == [marked_first]
    # a crash before the answer was recorded as sent: the redelivered copy is answered only when the
    # answer cannot have gone out yet (at most once) or can be told apart by its correlation id
    (op,) = [o for o in await h.store.list_operations() if o.action == "LOG_REQUEST"]
    async with h.store.engine.begin() as conn:
        await conn.execute(update(operations).where(operations.c.id == op.id).values(replied=False))
    again = Delivered(body, cid=cid, reply_to=reply_to, redelivered=True)
    await h.service._on_nfvo_message(again)
    assert again.settled == ["ack"] and len(seen) == 2
