"""The wire facts of ``catalogue``: queue names and routing keys, the EMS commands as the VNFM sends them,
gvnfm's typed fields (``scriptResults``, ``failedStep``) and the text fallback for VNFMs without them."""

from __future__ import annotations

import json
import re

import pytest

from gvnfm.catalogue import ems, queues
from gvnfm.catalogue.messages import (
    NO_ANSWER,
    FailedStep,
    ScriptResult,
    VnfmOrErrorMessage,
    VnfmOrGenericMessage,
    error_message,
    exit_status_in,
    parse_vnfm_message,
)
from gvnfm.catalogue.records import VirtualDeploymentUnit, VirtualNetworkFunctionRecord, VNFCInstance
from gvnfm.orchestrator.records import ErrorInfo


def test_queue_names_are_open_batons() -> None:
    assert queues.EXCHANGE == "openbaton-exchange"
    assert (queues.NFVO_REGISTRATION_QUEUE, queues.NFVO_REQUEST_QUEUE, queues.NFVO_NOTICE_QUEUE) == (
        "nfvo.manager.handling", "vnfm.nfvo.actions.reply", "vnfm.nfvo.actions")
    assert queues.ems_actions_queue("iperf-server-1") == "vnfm.iperf-server-1.actions"
    assert queues.ems_register_queue("generic") == "ems.generic.register"
    assert queues.nfvo_answers_queue("generic") == "gvnfm.generic.nfvo-answers"
    assert queues.ems_registered_key("generic") == "gvnfm.generic.ems-registered"
    assert queues.worker_inbox("generic", "ab12") == "gvnfm.generic.worker.ab12"


def test_the_actions_pattern_matches_exactly_the_queues_of_its_hosts() -> None:
    pattern = queues.ems_actions_pattern("(a-1|b\\.c)")
    assert re.fullmatch(pattern, queues.ems_actions_queue("a-1"))
    assert re.fullmatch(pattern, queues.ems_actions_queue("b.c"))
    assert not re.fullmatch(pattern, queues.ems_actions_queue("bxc"))
    assert not re.fullmatch(pattern, "vnfmXa-1.actions")


def test_ems_commands_keep_the_keys_and_their_order() -> None:
    # the EMS recognises a command sent again by its correlation id and body: the bytes must not change
    assert json.dumps(ems.execute("install.sh 1", {"a": "b"})) == \
        '{"action": "EXECUTE", "payload": "install.sh 1", "env": {"a": "b"}}'
    assert json.dumps(ems.save_scripts("a.sh", "QUJD", "/p")) == \
        '{"action": "SAVE_SCRIPTS", "payload": "QUJD", "name": "a.sh", "script-path": "/p"}'
    assert json.dumps(ems.save_scripts("a.sh", "QUJD", "/p", action=ems.SCRIPTS_UPDATE)) == \
        '{"action": "SCRIPTS_UPDATE", "payload": "QUJD", "name": "a.sh", "script-path": "/p"}'
    assert json.dumps(ems.clone_scripts("file:///r.git", "/p")) == \
        '{"action": "CLONE_SCRIPTS", "payload": "file:///r.git", "script-path": "/p"}'
    assert json.dumps(ems.save_vnfr_dependency("{}", "/p")) == \
        '{"action": "SAVE_VNFR_DEPENDENCY", "payload": "{}", "script-path": "/p"}'
    assert json.loads(ems.registration_body('we"ird')) == {"hostname": 'we"ird'}
    # the reply as the reference's generate_response writes it (json.dumps, its default separators)
    assert ems.EmsReply(output="o", err="e", status=2).to_body() == b'{"output": "o", "err": "e", "status": 2}'
    assert set(ems.EMS_ACTIONS) == {"SAVE_SCRIPTS", "CLONE_SCRIPTS", "EXECUTE", "SCRIPTS_UPDATE",
                                    "SAVE_VNFR_DEPENDENCY", "REPO_SCRIPTS_UPDATE"}


def test_no_answer_actions() -> None:
    assert NO_ANSWER == {"ERROR", "SCALE_IN"}


def test_failed_step_text_is_gvnfms_phrase_and_reads_back() -> None:
    script = FailedStep(hostname="h-1", action="EXECUTE", event="START", script="start.sh 2", status=3)
    text = script.describe(" boom\n")
    assert text == "EMS (h-1) had the following error: script 'start.sh 2' of event START exited with status 3: boom"
    assert FailedStep.from_text(text) == script
    save = FailedStep(hostname="h-1", action="SAVE_SCRIPTS", event="DELIVER", script="a.sh", status=-1)
    assert save.describe("") == \
        "EMS (h-1) had the following error: SAVE_SCRIPTS 'a.sh' exited with status -1: (no stderr)"
    assert not save.is_script and FailedStep.from_text(save.describe("")) is None
    assert exit_status_in(save.describe("")) == -1 and exit_status_in("EMS (h-1) had the following error: x") is None


def test_gvnfms_fields_travel_typed_and_only_when_set() -> None:
    vnfr = VirtualNetworkFunctionRecord(name="v", parent_ns_id="ns")
    plain = error_message(vnfr, "it failed", "because").to_wire()
    assert sorted(plain) == ["action", "exception", "nsrId", "virtualNetworkFunctionRecord"]   # as before
    step = FailedStep(hostname="h-1", action="EXECUTE", event="CONFIGURE", script="c.sh", status=1)
    results = [ScriptResult(hostname="h-1", action="EXECUTE", status=1, output="o", err="e")]
    wire = error_message(vnfr, step.describe("e"), "e", failed_step=step, script_results=results).to_wire()
    assert list(wire)[-2:] == ["scriptResults", "failedStep"]       # after the Java fields
    assert wire["failedStep"] == {"hostname": "h-1", "action": "EXECUTE", "event": "CONFIGURE", "script": "c.sh",
                                  "status": 1}
    assert wire["scriptResults"] == [{"hostname": "h-1", "action": "EXECUTE", "status": 1, "output": "o", "err": "e"}]
    back = parse_vnfm_message(json.dumps(wire))
    assert isinstance(back, VnfmOrErrorMessage) and back.failedStep == step and back.scriptResults == results
    assert back.to_wire() == wire
    ok = parse_vnfm_message(json.dumps({"action": "EXECUTE", "scriptResults": wire["scriptResults"]}))
    assert isinstance(ok, VnfmOrGenericMessage) and ok.scriptResults == results


def test_unusable_script_results_do_not_make_the_answer_unreadable() -> None:
    msg = parse_vnfm_message(json.dumps({"action": "EXECUTE", "scriptResults": [
        {"hostname": "h-1", "status": 0}, 7, {"hostname": "h-2", "status": "not a number"}]}))
    assert isinstance(msg, VnfmOrGenericMessage)
    assert [r.hostname for r in msg.scriptResults or []] == ["h-1"]
    other = parse_vnfm_message(json.dumps({"action": "ERROR", "scriptResults": "text"}))
    assert isinstance(other, VnfmOrErrorMessage) and other.scriptResults is None


def _record(*states: str) -> VirtualNetworkFunctionRecord:
    return VirtualNetworkFunctionRecord(name="v", vdu=[VirtualDeploymentUnit(vnfc_instance=[
        VNFCInstance(hostname=f"v-{i}", state=s) for i, s in enumerate(states)])])


@pytest.mark.parametrize("typed", [True, False], ids=["failedStep", "text-fallback"])
def test_error_info_reads_the_failed_script(typed: bool) -> None:
    step = FailedStep(hostname="v-1", action="EXECUTE", event="START", script="s.sh", status=2)
    info = ErrorInfo.from_vnfm("v", "START", step.describe("err"), "err", _record("ACTIVE", "error"),
                               step if typed else None)
    assert (info.hostname, info.script, info.event, info.stderr) == ("v-1", "s.sh", "START", "err")


def test_error_info_of_a_failed_delivery_names_the_host_only() -> None:
    step = FailedStep(hostname="v-0", action="SAVE_SCRIPTS", event="DELIVER", script="a.sh", status=1)
    info = ErrorInfo.from_vnfm("v", "INSTANTIATE", step.describe(""), None, _record("ACTIVE", "ACTIVE"), step)
    assert (info.hostname, info.script, info.event) == ("v-0", None, None)
    # a reference VNFM's text names no script: the VNFC the record has in state error
    other = ErrorInfo.from_vnfm("v", "INSTANTIATE", "EMS (v-1) had the following error:java.lang.Exception", None,
                                _record("ACTIVE", "error"))
    assert (other.hostname, other.script, other.event) == ("v-1", None, None)
