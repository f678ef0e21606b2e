"""The VNFM's pure decisions (``gvnfm.vnfm.outcomes``) and the typed operation context, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gvnfm.catalogue.ems import EmsReply
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord
from gvnfm.store.api import DONE, FAILED, RUNNING, Operation, OperationContext, StepResult
from gvnfm.vnfm import outcomes
from gvnfm.vnfm.executor import StepOutcome
from gvnfm.vnfm.plan import Step

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def vnfr(*instances: tuple[str, str | None]) -> VirtualNetworkFunctionRecord:
    """A VNFR with one VDU holding VNFC instances (id, component id)."""
    return VirtualNetworkFunctionRecord.model_validate({"id": "v-1", "name": "web", "vdu": [{"vnfc_instance": [
        {"id": i, "hostname": f"host-{i}", **({"vnfComponent": {"id": c}} if c else {})} for i, c in instances]}]})


def operation(*, state: str = DONE, reply: dict[str, Any] | None = None, replied: bool = False,
              worker: str | None = "w-other", updated: timedelta = timedelta(seconds=0),
              context: OperationContext | None = None, op_id: str = "op-1") -> Operation:
    return Operation(id=op_id, action="START", vnfr_id="v-1", vnfr_name="web", state=state, request={},
                     reply=reply, error=None, worker=worker, lease_until=None, created_at=NOW - timedelta(hours=1),
                     updated_at=NOW - updated, replied=replied, context=context or OperationContext())


# -- the typed context -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("stored", "read"), [
    (None, OperationContext()),
    ([1, 2], OperationContext()),
    ({}, OperationContext()),
    ({"allocated": {"id": "v"}, "ems_user": "u"}, OperationContext(allocated={"id": "v"}, ems_user="u")),
    ({"resumable": False, "later_key": 1}, OperationContext(resumable=False)),          # unknown key: ignored
    ({"scaled_vnfc": 7, "resumes": "op-0"}, OperationContext(resumes="op-0")),          # ill-typed: dropped
    ({"resumable": None}, OperationContext()),
    ({"scaled_before": ["a", None], "scaled_vnfc": None}, OperationContext(scaled_before=["a", None])),
])
def test_a_stored_context_reads_back_typed(stored: Any, read: OperationContext) -> None:
    assert OperationContext.from_stored(stored) == read


@pytest.mark.parametrize(("context", "stored"), [
    (OperationContext(), {}),
    (OperationContext(resumable=True, ems_user=None), {}),               # defaults are not stored
    (OperationContext(resumable=False), {"resumable": False}),
    (OperationContext(scaled={"id": "v"}, scaled_before=[None, "a"], scaled_vnfc="b"),
     {"scaled": {"id": "v"}, "scaled_before": [None, "a"], "scaled_vnfc": "b"}),
])
def test_a_context_is_stored_as_its_fields_not_at_their_default(context: OperationContext,
                                                                 stored: dict[str, Any]) -> None:
    assert context.stored() == stored
    assert OperationContext.from_stored(stored) == context


# -- SCALE_OUT ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("instances", "before", "component", "known", "picked"), [
    ([("a", "c1"), ("b", "c1")], {"a"}, "c1", None, "b"),                     # the one added
    ([("a", "c1"), ("b", "c2"), ("c", "c1")], {"a"}, "c1", None, "c"),        # of the scaled component first
    ([("a", "c1"), ("b", "c2")], {"a"}, "c9", None, "b"),                     # else any added
    ([("a", "c1"), ("b", None)], {"a"}, "c1", None, "b"),                     # an added one without component
    ([("a", "c1"), ("b", "c1")], {"a", "b"}, "c1", None, None),               # nothing added
    ([("a", "c1"), ("b", "c1"), ("c", "c1")], {"a", "b", "c"}, "c1", "b", "b"),  # the one a first run recorded
    ([("a", "c1"), ("b", "c1")], {"a"}, "c1", "gone", "b"),                   # recorded but not there: as new
])
def test_the_vnfc_a_scale_out_added(instances: list[tuple[str, str | None]], before: set[str | None],
                                    component: str, known: str | None, picked: str | None) -> None:
    inst = outcomes.new_vnfc(vnfr(*instances), before, component, known)
    assert (inst.id if inst is not None else None) == picked


@pytest.mark.parametrize(("context", "new", "saved"), [
    (OperationContext(), "b", True),                                                   # first run
    (OperationContext(), None, True),                                                  # first run, nothing new
    (OperationContext(scaled={"id": "v-1"}), "b", True),                               # new one found now
    (OperationContext(scaled={"id": "v-1"}), None, False),
    (OperationContext(scaled={"id": "v-1"}, scaled_vnfc="b"), "b", False),             # all known already
])
def test_what_a_scale_out_stores_before_waiting_for_the_new_vnfc(context: OperationContext, new: str | None,
                                                                 saved: bool) -> None:
    scaled = vnfr(("a", "c1"), ("b", "c1"))
    inst = scaled.find_vnfc_instance(id=new) if new else None
    got = outcomes.scale_out_context(context, scaled, {"a", None}, inst)
    if not saved:
        assert got is None
        return
    assert got == context.model_copy(update={"scaled": scaled.to_wire(), "scaled_before": [None, "a"],
                                             "scaled_vnfc": new})


# -- EXECUTE -------------------------------------------------------------------------------------------------
def _step(step_id: str, host: str, action: str) -> Step:
    return Step(step_id=step_id, hostname=host, action=action, command={})


def _outcome(step: Step, status: int, out: str = "", err: str = "") -> StepOutcome:
    return StepOutcome(step=step, reply=EmsReply(output=out, err=err, status=status), started_at=NOW, duration=0.1)


def _stored(step: Step, status: int, out: str, err: str) -> StepResult:
    return StepResult(operation_id="op", step_id=step.step_id, action=step.action, event="EXECUTE", script_index=0,
                      script="p.sh", hostname=step.hostname, vnfr_name="web", status=status, output=out, error=err,
                      started_at=NOW, duration=0.1)


SAVE = {h: _step(f"EXECUTE_SAVE/{h}", h, "SAVE_SCRIPTS") for h in ("h1", "h2")}
RUN = {h: _step(f"EXECUTE/0/{h}/", h, "EXECUTE") for h in ("h1", "h2")}


@pytest.mark.parametrize(("latest", "stored", "expected"), [
    # run here, both ways
    ([_outcome(SAVE["h1"], 0), _outcome(RUN["h1"], 0, "up"), _outcome(SAVE["h2"], 0), _outcome(RUN["h2"], 2, "", "x")],
     [], [("h1", "EXECUTE", 0, "up", ""), ("h2", "EXECUTE", 2, "", "x")]),
    # not saved on h2: not run there, the save's failure reported
    ([_outcome(SAVE["h1"], 0), _outcome(SAVE["h2"], 1, "", "disk full"), _outcome(RUN["h1"], 0, "up")],
     [], [("h1", "EXECUTE", 0, "up", ""), ("h2", "SAVE_SCRIPTS", 1, "", "disk full")]),
    # a redelivery: h1 ran in an earlier run of the operation
    ([_outcome(RUN["h2"], 0, "b")], [_stored(RUN["h1"], 0, "a", "")],
     [("h1", "EXECUTE", 0, "a", ""), ("h2", "EXECUTE", 0, "b", "")]),
    # stopped before h2's run
    ([_outcome(RUN["h1"], 0, "a")], [], [("h1", "EXECUTE", 0, "a", ""), ("h2", "EXECUTE", -1, "", "not run")]),
])
def test_what_an_execute_reports_per_vnfc(latest: list[StepOutcome], stored: list[StepResult],
                                          expected: list[tuple[str, str, int, str, str]]) -> None:
    results = outcomes.execute_results([RUN["h1"], RUN["h2"]], SAVE, {o.step.step_id: o for o in latest},
                                       {r.step_id: r for r in stored})
    assert [(r.hostname, r.action, r.status, r.output, r.err) for r in results] == expected
    assert results[0].to_wire() == dict(zip(("hostname", "action", "status", "output", "err"), expected[0],
                                            strict=True))


@pytest.mark.parametrize(("results", "failure"), [
    ([outcomes.ScriptRun("h1", "EXECUTE", 0, "ok", "")], None),
    ([outcomes.ScriptRun("h1", "EXECUTE", 0, "ok", ""), outcomes.ScriptRun("h2", "EXECUTE", 3, "", " bad\n")],
     ("EXECUTE 'p.sh' failed on 1 of 2 VNFC(s) of web: EMS (h2) EXECUTE exited with status 3: bad", "bad")),
    ([outcomes.ScriptRun("h1", "SAVE_SCRIPTS", 1, "", ""), outcomes.ScriptRun("h2", "EXECUTE", -1, "", "x")],
     ("EXECUTE 'p.sh' failed on 2 of 2 VNFC(s) of web: EMS (h1) SAVE_SCRIPTS exited with status 1: (no stderr); "
      "EMS (h2) EXECUTE exited with status -1: x", None)),
    ([outcomes.ScriptRun("h1", "EXECUTE", 1, "", "e" * 600 + "END")],
     (f"EXECUTE 'p.sh' failed on 1 of 1 VNFC(s) of web: EMS (h1) EXECUTE exited with status 1: {'e' * 497}END",
      "e" * 600 + "END")),
])
def test_the_error_of_a_failed_execute(results: list[outcomes.ScriptRun],
                                       failure: tuple[str, str | None] | None) -> None:
    assert outcomes.execute_failure("p.sh", "web", results) == failure


# -- RESUME ----------------------------------------------------------------------------------------------------
ORIGINAL = {"action": "START"}


@pytest.mark.parametrize(("failed", "own", "action", "instantiate", "expected"), [
    # a first RESUME: the failed op's context, told what it resumes (its own ``resumes`` replaced)
    ({"ems_user": "u", "resumes": "op-0"}, {}, "START", False,
     {"ems_user": "u", "resumes": "op-1", "original_request": ORIGINAL}),
    # a re-run of the RESUME: what it stored itself wins
    ({"ems_user": "u"}, {"ems_user": "u2", "resumes": "op-1"}, "START", False,
     {"ems_user": "u2", "resumes": "op-1", "original_request": ORIGINAL}),
    # an allocated INSTANTIATE continues with the NFVO's records
    ({"allocated": {"id": "old"}}, {}, "INSTANTIATE", True,
     {"allocated": "VNFR", "resumes": "op-1", "original_request": ORIGINAL}),
    # a SCALE_OUT whose new VNFC the NFVO holds: its records; one it does not: the stored answer
    ({"scaled": {"id": "old"}, "scaled_vnfc": "b"}, {}, "SCALE_OUT", False,
     {"scaled": "VNFR", "scaled_vnfc": "b", "resumes": "op-1", "original_request": ORIGINAL}),
    ({"scaled": {"id": "old"}, "scaled_vnfc": "zz"}, {}, "SCALE_OUT", False,
     {"scaled": {"id": "old"}, "scaled_vnfc": "zz", "resumes": "op-1", "original_request": ORIGINAL}),
    ({"scaled": {"id": "old"}}, {}, "SCALE_OUT", False,
     {"scaled": {"id": "old"}, "resumes": "op-1", "original_request": ORIGINAL}),
    # a re-run's own key set to null (stored so by an older version) still wins over the failed op's
    ({"scaled": {"id": "old"}, "scaled_vnfc": "b"}, {"scaled_vnfc": None}, "SCALE_OUT", False,
     {"scaled": {"id": "old"}, "resumes": "op-1", "original_request": ORIGINAL}),
])
def test_the_context_a_resume_continues_with(failed: dict[str, Any], own: dict[str, Any], action: str,
                                             instantiate: bool, expected: dict[str, Any]) -> None:
    current = vnfr(("a", "c1"), ("b", "c1"))
    expected = {k: current.to_wire() if v == "VNFR" else v for k, v in expected.items()}
    got = outcomes.resume_context(operation(state=FAILED, context=OperationContext.from_stored(failed)),
                                  OperationContext.from_stored(own), ORIGINAL, action, instantiate, current)
    assert got == OperationContext.model_validate(expected)


# -- LOG_REQUEST -------------------------------------------------------------------------------------------------
def test_the_script_log_holds_script_runs_and_every_failure() -> None:
    def r(action: str, status: int, script: str, out: str = "", err: str = "") -> StepResult:
        return StepResult(operation_id="op", step_id=script, action=action, event="START", script_index=0,
                          script=script, hostname="h", vnfr_name="web", status=status, output=out, error=err,
                          started_at=NOW, duration=0.1)

    sep = ["", "", "~~~~~~~~~~~~~~~~~~~~~~~~~", "#########################", "~~~~~~~~~~~~~~~~~~~~~~~~~", "", ""]
    out, err = outcomes.script_log([r("EXECUTE", 0, "a.sh", "1\n2"), r("SAVE_SCRIPTS", 0, "a.sh", "saved"),
                                    r("SAVE_VNFR_DEPENDENCY", 0, "ob_parameters"), r("EXECUTE", 1, "b.sh", "", "no"),
                                    r("CLONE_SCRIPTS", 128, "git", "", "denied")])
    assert out == ["Output of Script : a.sh", "", "1", "2", *sep]
    assert err == ["Error log of Script : b.sh", "", "no", *sep, "Error log of Script : git", "", "denied", *sep]


# -- deliveries (the service) -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reply_to", "correlation_id", "once"), [
    ("amq.rabbitmq.reply-to.g2dk", None, True),
    ("amq.rabbitmq.reply-to.g2dk", "", True),
    ("amq.rabbitmq.reply-to.g2dk", "c-1", False),
    ("nfvo.replies", None, False),
    (None, None, False),
    ("", None, False),
])
def test_answers_sent_at_most_once(reply_to: str | None, correlation_id: str | None, once: bool) -> None:
    assert outcomes.reply_at_most_once(reply_to, correlation_id) is once


@pytest.mark.parametrize(("state", "owned", "claimed"), [
    (DONE, False, outcomes.Claimed.FINISHED), (FAILED, True, outcomes.Claimed.FINISHED),
    (RUNNING, True, outcomes.Claimed.RUN), (RUNNING, False, outcomes.Claimed.HELD),
])
def test_what_a_claim_found(state: str, owned: bool, claimed: outcomes.Claimed) -> None:
    assert outcomes.claimed(operation(state=state), owned) is claimed


REPLY = {"action": "START"}
DUP, WAIT = outcomes.Verdict(outcomes.Answer.DUPLICATE), outcomes.Verdict(outcomes.Answer.WAIT)
SEND = outcomes.Verdict(outcomes.Answer.SEND, mark_after=True)
RESEND = outcomes.Verdict(outcomes.Answer.SEND)
EARLY = outcomes.Verdict(outcomes.Answer.SEND, mark_before=True)
NEW, REDELIVERED = outcomes.Delivered("q", "c-1", False), outcomes.Delivered("q", "c-1", True)


@pytest.mark.parametrize(("op", "delivery", "verdict"), [
    (operation(reply=None), NEW, DUP),                                                     # no reply stored
    (operation(reply=REPLY, replied=True), REDELIVERED, DUP),                              # sent already
    (operation(reply=REPLY, replied=True), NEW, RESEND),                                   # a new copy asks again
    (operation(reply=REPLY, replied=True), outcomes.Delivered("q", "c-1", False, asked_before=True), DUP),
    (operation(reply=REPLY, replied=True), outcomes.Delivered(None, "c-1", False), DUP),   # nowhere to answer
    (operation(reply=REPLY, worker="w-other", updated=timedelta(seconds=5)), REDELIVERED, WAIT),  # being sent
    (operation(reply=REPLY, worker="w-other", updated=timedelta(seconds=30)), REDELIVERED, SEND),  # its sender died
    (operation(reply=REPLY, worker="w-me", updated=timedelta(seconds=5)), REDELIVERED, SEND),     # this worker's
    (operation(reply=REPLY, worker=None, updated=timedelta(seconds=5)), REDELIVERED, SEND),
    (operation(reply=REPLY, worker="w-other", updated=timedelta(seconds=5)), NEW, SEND),          # asks: answered
    (operation(reply=REPLY, worker=None), outcomes.Delivered("amq.rabbitmq.reply-to.x", None, True), EARLY),  # once
    (operation(reply=REPLY, replied=True), outcomes.Delivered("amq.rabbitmq.reply-to.x", None, False), RESEND),
])
def test_the_verdict_on_a_delivery_of_a_finished_operation(op: Operation, delivery: outcomes.Delivered,
                                                           verdict: outcomes.Verdict) -> None:
    assert outcomes.verdict(op, delivery, NOW, worker="w-me", lease_seconds=20) == verdict


@pytest.mark.parametrize(("failures", "retry"), [
    (1, outcomes.Retry(give_up=False, pause=0.5)),
    (4, outcomes.Retry(give_up=False, pause=2.0)),
    (5, outcomes.Retry(give_up=True, pause=2.5)),
    (40, outcomes.Retry(give_up=True, pause=10.0)),
])
def test_what_follows_a_failed_delivery(failures: int, retry: outcomes.Retry) -> None:
    assert outcomes.after_failure(failures, max_failures=5, pause=0.5) == retry


@pytest.mark.parametrize(("record", "final", "action", "kept"), [
    ({"id": "v", "name": "n"}, DONE, "START", True),
    ({"id": "v", "name": "n"}, FAILED, "START", False),
    ({"id": "v", "name": "n"}, DONE, "RELEASE_RESOURCES", False),
    ({"id": None, "name": "n"}, DONE, "START", False),
    ({"id": "v", "name": ""}, DONE, "START", False),
    (None, DONE, "START", False),
])
def test_which_vnfrs_a_finished_operation_saves(record: dict[str, Any] | None, final: str, action: str,
                                                kept: bool) -> None:
    value = VirtualNetworkFunctionRecord.model_validate(record) if record is not None else None
    assert outcomes.keeps_vnfr(value, final, action) is kept
