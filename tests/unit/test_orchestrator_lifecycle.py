"""The VNFR lifecycle table: every legal (status, event) pair and where it leads, a sample of refused
pairs, and what ``apply`` records and announces."""

from __future__ import annotations

from typing import Any

import pytest

from gvnfm.orchestrator.errors import Conflict
from gvnfm.orchestrator.lifecycle import (
    KEEP,
    PREVIOUS,
    TABLE,
    Event,
    IllegalTransition,
    apply,
    resumed,
    transition,
)
from gvnfm.orchestrator.records import ErrorInfo, NetworkServiceRecord, VnfrState

SETTLED = "NULL INITIALIZED INACTIVE ACTIVE ERROR TERMINATED".split()
ALL = [*SETTLED, "SCALING", "RESUMING"]


def rows(sources: list[str], event: str, target: str) -> list[tuple[str, str, str]]:
    return [(s, event, target) for s in sources]


#: (status, event, status after): every pair the local NFVO makes, written out independently of TABLE
LEGAL: list[tuple[str, str, str]] = [
    # an answer applies from any settled status (an ERROR notice or a teardown may land while it is in flight)
    *rows(SETTLED, "INSTANTIATED", "INITIALIZED"),
    *rows(["NULL", "INITIALIZED", "INACTIVE", "ERROR", "TERMINATED"], "CONFIGURED", "INACTIVE"),
    ("ACTIVE", "CONFIGURED", KEEP),
    *rows(SETTLED, "STARTED", "ACTIVE"),
    *rows(SETTLED, "STOPPED", "INACTIVE"),
    *rows(SETTLED, "RESTARTING", "NULL"),
    *rows(SETTLED, "SCALING_OUT", "SCALING"),
    *rows(["SCALING", "ERROR", "TERMINATED"], "SCALED", PREVIOUS),
    ("SCALING", "SCALE_OUT_DROPPED", PREVIOUS),
    ("ERROR", "RESUMING", "RESUMING"),
    ("RESUMING", "RESUME_DROPPED", "ERROR"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_INSTANTIATE", "INITIALIZED"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_MODIFY", "INACTIVE"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_START", "ACTIVE"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_RELEASE", "TERMINATED"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_CONFIGURED", "INACTIVE"),
    *rows(["RESUMING", "ERROR", "TERMINATED"], "RESUMED_INSTANTIATED", "INITIALIZED"),
    *rows(ALL, "FAILED", "ERROR"),
    *rows(ALL, "NFVO_FAILED", "ERROR"),
    *rows(ALL, "TERMINATED", "TERMINATED"),
]

ILLEGAL: list[tuple[str, str]] = [
    ("SCALING", "INSTANTIATED"), ("SCALING", "STARTED"), ("SCALING", "STOPPED"), ("SCALING", "CONFIGURED"),
    ("SCALING", "SCALING_OUT"), ("SCALING", "RESTARTING"), ("SCALING", "RESUMING"),
    ("RESUMING", "STARTED"), ("RESUMING", "SCALING_OUT"), ("RESUMING", "SCALED"), ("RESUMING", "RESUMING"),
    ("ACTIVE", "RESUMING"), ("NULL", "RESUMING"), ("TERMINATED", "RESUMING"),
    ("ACTIVE", "SCALED"), ("NULL", "SCALED"), ("ERROR", "SCALE_OUT_DROPPED"), ("ACTIVE", "SCALE_OUT_DROPPED"),
    ("ERROR", "RESUME_DROPPED"), ("ACTIVE", "RESUME_DROPPED"),
    ("ACTIVE", "RESUMED_START"), ("NULL", "RESUMED_INSTANTIATE"), ("INACTIVE", "RESUMED_RELEASE"),
    ("SCALING", "RESUMED_MODIFY"),
]


def test_the_table_holds_exactly_the_legal_pairs() -> None:
    assert {(s, e.value): t for (s, e), t in TABLE.items()} == {(s, e): t for s, e, t in LEGAL}
    assert len(LEGAL) == len({(s, e) for s, e, _ in LEGAL})


@pytest.mark.parametrize(("status", "event", "after"), LEGAL, ids=[f"{s}-{e}" for s, e, _ in LEGAL])
def test_every_legal_pair(status: str, event: str, after: str) -> None:
    if after == PREVIOUS:
        assert transition(status, Event(event), previous="INACTIVE") == "INACTIVE"
        assert transition(status, Event(event), previous="ERROR") == "ERROR"
        with pytest.raises(ValueError, match="status before the operation"):
            transition(status, Event(event))
    else:
        assert transition(status, Event(event)) == after


@pytest.mark.parametrize(("status", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
def test_illegal_pairs_are_refused_with_a_clear_error(status: str, event: str) -> None:
    with pytest.raises(IllegalTransition, match=f"VNFR web is {status}: {event} does not apply to it "
                                                r"\(only from ") as refused:
        transition(status, Event(event), previous="ACTIVE", vnfr="web")
    assert isinstance(refused.value, Conflict)
    assert (refused.value.status, refused.value.event) == (status, Event(event))


@pytest.mark.parametrize(("action", "configured", "event"), [
    ("INSTANTIATE", False, "RESUMED_INSTANTIATE"), ("INSTANTIATE", True, "RESUMED_INSTANTIATE"),
    ("MODIFY", False, "RESUMED_MODIFY"), ("START", True, "RESUMED_START"),
    ("RELEASE_RESOURCES", True, "RESUMED_RELEASE"),
    ("STOP", True, "RESUMED_CONFIGURED"), ("HEAL", False, "RESUMED_INSTANTIATED"),
    ("UPDATE", True, "RESUMED_CONFIGURED"), ("SCALED", False, "RESUMED_INSTANTIATED"),
    ("EXECUTE", True, "RESUMED_CONFIGURED"),
])
def test_the_event_of_a_resume_answer(action: str, configured: bool, event: str) -> None:
    assert resumed(action, configured) is Event(event)


def nsr_with(*states: tuple[str, str]) -> NetworkServiceRecord:
    nsr = NetworkServiceRecord(name="ns")
    for name, status in states:
        nsr.vnfrs[name] = VnfrState(name=name, status=status, vnfr={"name": name, "status": status})
    return nsr


class Emitted:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, nsr: NetworkServiceRecord, vnfr: str | None = None, **kw: Any) -> None:
        self.events.append({"vnfr": vnfr, **kw})


def test_apply_records_refreshes_and_announces() -> None:
    nsr, emit = nsr_with(("web", "INACTIVE"), ("db", "ACTIVE")), Emitted()
    assert apply(nsr, "web", Event.STARTED, emit) == "ACTIVE"
    state = nsr.vnfr("web")
    assert state.status == "ACTIVE" and state.vnfr == {"name": "web", "status": "ACTIVE"}
    assert nsr.status == "ACTIVE"
    assert emit.events == [{"vnfr": "web", "action": "START", "state": "ACTIVE"}]


def test_a_failure_adds_its_error_and_is_announced_as_the_failed_action() -> None:
    nsr, emit = nsr_with(("web", "ACTIVE")), Emitted()
    error = ErrorInfo(vnfr="web", action="HEAL", message="boom", hostname="web-1")
    apply(nsr, "web", Event.FAILED, emit, action="HEAL", error=error)
    state = nsr.vnfr("web")
    assert state.status == "ERROR" and state.error is error and nsr.errors == [error] and nsr.status == "ERROR"
    assert state.vnfr == {"name": "web", "status": "ACTIVE"}       # the VNFR as received is left as it came
    assert emit.events == [{"vnfr": "web", "action": "HEAL", "state": "ERROR", "hostname": "web-1",
                            "message": "boom"}]


@pytest.mark.parametrize("event", [Event.NFVO_FAILED, Event.RESUMING, Event.RESUMED_START, Event.TERMINATED])
def test_events_reported_by_their_caller_are_not_announced(event: Event) -> None:
    nsr, emit = nsr_with(("web", "ERROR")), Emitted()
    error = ErrorInfo(vnfr="web", action="RESTART", message="x") if event is Event.NFVO_FAILED else None
    apply(nsr, "web", event, emit, error=error)
    assert emit.events == []
    recorded = event is Event.TERMINATED
    assert nsr.vnfr("web").vnfr == {"name": "web", "status": nsr.vnfr("web").status if recorded else "ERROR"}


def test_scale_out_goes_back_to_the_status_it_began_in() -> None:
    nsr, emit = nsr_with(("web", "INACTIVE")), Emitted()
    assert apply(nsr, "web", Event.SCALING_OUT, emit) == "SCALING"
    assert apply(nsr, "web", Event.SCALED, emit, previous="INACTIVE") == "INACTIVE"
    assert [(e["action"], e["state"]) for e in emit.events] == [("SCALE_OUT", "SCALING"), ("SCALED", "INACTIVE")]


def test_keep_changes_and_announces_nothing() -> None:
    nsr, emit = nsr_with(("web", "ACTIVE")), Emitted()
    before = nsr.updated_at
    assert apply(nsr, "web", Event.CONFIGURED, emit) == "ACTIVE"
    assert emit.events == [] and nsr.updated_at == before


def test_a_refused_event_changes_nothing() -> None:
    nsr, emit = nsr_with(("web", "SCALING")), Emitted()
    with pytest.raises(IllegalTransition, match="VNFR web is SCALING: STARTED does not apply"):
        apply(nsr, "web", Event.STARTED, emit)
    assert nsr.vnfr("web").status == "SCALING" and nsr.vnfr("web").vnfr == {"name": "web", "status": "SCALING"}
    assert emit.events == [] and nsr.errors == []
