"""The VNFR lifecycle of the local NFVO as one table: (status, event) -> status.

The statuses are the Java NFVO's (``mano/record/Status.java``, names in ``records``); the events are what
moves a VNFR: an answer of its VNFM, the start or the end of an operation of the NFVO, a failure, the
teardown. Invariants:

- every status change of a ``VnfrState`` goes through ``apply`` (which records, refreshes the NSR's status
  and announces it as the event says); a pair absent from ``TABLE`` raises ``IllegalTransition`` and
  changes nothing;
- an answer to a request is applied from any settled status: an ERROR notice or a teardown may land while
  the request is in flight, and the VNFM's answer is taken as it comes (as the Java NFVO's tasks take the
  VNFR of the answer);
- SCALING and RESUMING are held only while their operation holds the VNFR (``locks``): nothing but their
  own end, a failure or the teardown leaves them; SCALE_OUT ends back in the status it started from;
- RESUME starts only from ERROR;
- a failure (``FAILED``, ``NFVO_FAILED``) and the teardown are accepted from every status.

``transition`` is pure; ``apply`` changes the records and calls ``emit`` (no I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from gvnfm.orchestrator.errors import Conflict
from gvnfm.orchestrator.records import (
    ACTIVE,
    ERROR,
    INACTIVE,
    INITIALIZED,
    NULL,
    RESUMING,
    SCALING,
    TERMINATED,
    ErrorInfo,
    NetworkServiceRecord,
)


class Event(StrEnum):
    INSTANTIATED = "INSTANTIATED"           # INSTANTIATE answered (deploy, restart)
    CONFIGURED = "CONFIGURED"               # MODIFY answered
    STARTED = "STARTED"                     # START of the whole VNFR answered
    STOPPED = "STOPPED"                     # STOP of the whole VNFR answered
    RESTARTING = "RESTARTING"               # restart: the hosts are about to be rebuilt
    SCALING_OUT = "SCALING_OUT"             # SCALE_OUT about to be sent
    SCALED = "SCALED"                       # SCALE_OUT answered: back to the status before it
    SCALE_OUT_DROPPED = "SCALE_OUT_DROPPED"  # SCALE_OUT refused or cancelled: back to the status before it
    RESUMING = "RESUMING"                   # RESUME about to be sent
    RESUME_DROPPED = "RESUME_DROPPED"       # RESUME refused (nothing to resume) or cancelled: ERROR again
    RESUMED_INSTANTIATE = "RESUMED_INSTANTIATE"   # RESUME answered with the resumed action's message
    RESUMED_MODIFY = "RESUMED_MODIFY"
    RESUMED_START = "RESUMED_START"
    RESUMED_RELEASE = "RESUMED_RELEASE"
    RESUMED_CONFIGURED = "RESUMED_CONFIGURED"     # any other resumed action, of a configured VNFR
    RESUMED_INSTANTIATED = "RESUMED_INSTANTIATED"  # any other resumed action, of a VNFR not configured
    FAILED = "FAILED"                       # the VNFM answered or sent ERROR, a request failed or timed out
    NFVO_FAILED = "NFVO_FAILED"             # the NFVO's own step failed (hosts not rebuilt, a crash)
    TERMINATED = "TERMINATED"               # teardown


#: the target "the status before the operation began" (SCALE_OUT), given to ``apply`` as ``previous``
PREVIOUS = "<previous>"
#: the target "unchanged": the event is legal and nothing is recorded nor announced
KEEP = "<keep>"

SETTLED = (NULL, INITIALIZED, INACTIVE, ACTIVE, ERROR, TERMINATED)
STATUSES = (*SETTLED, SCALING, RESUMING)
#: what an ERROR notice or a teardown may have made of a VNFR while a request of its was in flight
IN_FLIGHT = (ERROR, TERMINATED)


def _rows(sources: Iterable[str], event: Event, target: str) -> dict[tuple[str, Event], str]:
    return {(s, event): target for s in sources}


TABLE: dict[tuple[str, Event], str] = {
    **_rows(SETTLED, Event.INSTANTIATED, INITIALIZED),
    **_rows((s for s in SETTLED if s != ACTIVE), Event.CONFIGURED, INACTIVE),
    (ACTIVE, Event.CONFIGURED): KEEP,        # a started VNFR stays ACTIVE when (re)configured
    **_rows(SETTLED, Event.STARTED, ACTIVE),
    **_rows(SETTLED, Event.STOPPED, INACTIVE),
    **_rows(SETTLED, Event.RESTARTING, NULL),
    **_rows(SETTLED, Event.SCALING_OUT, SCALING),
    **_rows((SCALING, *IN_FLIGHT), Event.SCALED, PREVIOUS),
    (SCALING, Event.SCALE_OUT_DROPPED): PREVIOUS,
    (ERROR, Event.RESUMING): RESUMING,
    (RESUMING, Event.RESUME_DROPPED): ERROR,
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_INSTANTIATE, INITIALIZED),
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_MODIFY, INACTIVE),
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_START, ACTIVE),
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_RELEASE, TERMINATED),
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_CONFIGURED, INACTIVE),
    **_rows((RESUMING, *IN_FLIGHT), Event.RESUMED_INSTANTIATED, INITIALIZED),
    **_rows(STATUSES, Event.FAILED, ERROR),
    **_rows(STATUSES, Event.NFVO_FAILED, ERROR),
    **_rows(STATUSES, Event.TERMINATED, TERMINATED),
}

#: the NFVO action an event is announced as (``FAILED`` is announced as the failed action, given to ``apply``)
ACTIONS: dict[Event, str] = {
    Event.INSTANTIATED: "INSTANTIATE", Event.CONFIGURED: "MODIFY", Event.STARTED: "START", Event.STOPPED: "STOP",
    Event.RESTARTING: "RESTART", Event.SCALING_OUT: "SCALE_OUT", Event.SCALED: "SCALED",
    Event.SCALE_OUT_DROPPED: "SCALE_OUT",
}
#: events ``apply`` announces as a ProgressEvent (the others are reported by their caller: the deploy's or
#: teardown's own event, the exception raised, the answer of RESUME)
ANNOUNCED = frozenset({*ACTIONS, Event.FAILED})
#: events whose status is also written into the VNFR as last received (``VnfrState.vnfr``)
RECORDED = frozenset({*ACTIONS, Event.TERMINATED})

#: the event of a RESUME answer, by the resumed action (any other: RESUMED_CONFIGURED / RESUMED_INSTANTIATED)
RESUMED: dict[str, Event] = {
    "INSTANTIATE": Event.RESUMED_INSTANTIATE, "MODIFY": Event.RESUMED_MODIFY, "START": Event.RESUMED_START,
    "RELEASE_RESOURCES": Event.RESUMED_RELEASE,
}


class IllegalTransition(Conflict):
    """An event that does not apply to the VNFR's current status (refused, nothing changed)."""

    def __init__(self, vnfr: str, status: str, event: Event) -> None:
        legal = sorted(s for s, e in TABLE if e is event)
        super().__init__(f"VNFR {vnfr} is {status}: {event.value} does not apply to it (only from "
                         f"{', '.join(legal)})")
        self.vnfr, self.status, self.event = vnfr, status, event


def resumed(action: str, configured: bool) -> Event:
    """The event of a RESUME answer carrying ``action`` (the resumed action's message)."""
    return RESUMED.get(action, Event.RESUMED_CONFIGURED if configured else Event.RESUMED_INSTANTIATED)


def transition(status: str, event: Event, *, previous: str | None = None, vnfr: str = "?") -> str:
    """The status after ``event`` (``KEEP``: unchanged); ``previous`` is the status the operation began
    in (needed by the events that go back to it)."""
    target = TABLE.get((status, event))
    if target is None:
        raise IllegalTransition(vnfr, status, event)
    if target == PREVIOUS:
        if previous is None or previous not in STATUSES:
            raise ValueError(f"{event.value} goes back to the status before the operation: give it (got "
                             f"{previous!r})")
        return previous
    return target


#: ``emit(nsr, vnfr_name, **fields of ProgressEvent)``
Emit = Callable[..., Any]


def apply(nsr: NetworkServiceRecord, name: str, event: Event, emit: Emit, *, action: str | None = None,
          error: ErrorInfo | None = None, previous: str | None = None) -> str:
    """Move VNFR ``name`` of ``nsr`` by ``event``: its status (and, for ``RECORDED`` events, the VNFR as
    last received), ``error`` added to the NSR's errors, the NSR's status refreshed, and for ``ANNOUNCED``
    events a ProgressEvent (``action`` default the event's, with ``error``'s hostname and message).
    Returns the new status; raises IllegalTransition (nothing changed)."""
    state = nsr.vnfr(name)
    new = transition(state.status, event, previous=previous, vnfr=name)
    if new == KEEP:
        return state.status
    state.status = new
    if event in RECORDED and state.vnfr is not None:
        state.vnfr["status"] = new
    if error is not None:
        nsr.add_error(error)
    nsr.refresh_status()
    if event in ANNOUNCED:
        emit(nsr, name, action=action or ACTIONS.get(event, event.value), state=new,
             **({"hostname": error.hostname, "message": error.message} if error is not None else {}))
    return new
