"""The VNFM's decisions that need no I/O: which VNFC a scale-out added, what an ad-hoc EXECUTE
answers, what a RESUME continues with, the text of a script log, and what the service does with a
delivery of an NFVO message (answer, wait, run, give up).

Everything here is pure: no broker, no store, no clock (the time is an argument). The controller
(``operations``) and the service do the awaiting; tests are table-driven (``tests/unit/test_vnfm_outcomes.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFCInstance
from gvnfm.store.api import DONE, FAILED, Operation, OperationContext, StepResult
from gvnfm.vnfm.plan import Step

if TYPE_CHECKING:   # a type only: the executor's I/O is no dependency of these decisions
    from gvnfm.vnfm.executor import StepOutcome

#: RabbitMQ direct reply-to: the name stands for the requester's channel, not for one request. A
#: requester that keeps the channel for its next request receives there whatever is sent to the name.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to."


# -- SCALE_OUT ----------------------------------------------------------------------------------------
def new_vnfc(scaled: VirtualNetworkFunctionRecord, before: set[str | None], component_id: str | None,
             known: str | None) -> VNFCInstance | None:
    """The VNFC instance the NFVO's SCALING answer added: the one a first run recorded (``known``),
    else the first one not in ``before`` of the scaled component, else the first one not in ``before``."""
    instances = scaled.vnfc_instances()
    if known:
        for inst in instances:
            if inst.id == known:
                return inst
    added = [i for i in instances if i.id not in before]
    for inst in added:
        if inst.vnfComponent is not None and inst.vnfComponent.id == component_id:
            return inst
    return added[0] if added else None


def scale_out_context(context: OperationContext, scaled: VirtualNetworkFunctionRecord, before: set[str | None],
                      new: VNFCInstance | None) -> OperationContext | None:
    """The context to store before the new VNFC is waited for (a re-run never scales out again), or
    None when the stored one already says it all (the SCALING answer and the new VNFC are known)."""
    if context.scaled is not None and (new is None or context.scaled_vnfc):
        return None
    return context.model_copy(update={"scaled": scaled.to_wire(), "scaled_before": sorted(before, key=str),
                                      "scaled_vnfc": new.id if new is not None else None})


# -- EXECUTE (ad-hoc script) -------------------------------------------------------------------------
@dataclass(frozen=True)
class ScriptRun:
    """What an ad-hoc EXECUTE did on one VNFC (one ``scriptResults`` entry)."""

    hostname: str
    action: str
    status: int
    output: str
    err: str

    def to_wire(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "action": self.action, "status": self.status, "output": self.output,
                "err": self.err}


def execute_results(runs: Iterable[Step], saves: Mapping[str, Step], latest: Mapping[str, StepOutcome],
                    stored: Mapping[str, StepResult]) -> list[ScriptRun]:
    """One result per script run (``runs``, in VNFR order): its outcome in this run (``latest``), else
    the failed save of the script on that VNFC (not saved there: not run there), else its result from
    an earlier run of the operation (``stored``: a redelivery), else "not run"."""
    results: list[ScriptRun] = []
    for step in runs:
        save = latest.get(saves[step.hostname].step_id)
        if step.step_id in latest:
            reply = latest[step.step_id].reply
            results.append(ScriptRun(step.hostname, step.action, reply.status, reply.output, reply.err))
        elif save is not None and save.reply.status != 0:
            results.append(ScriptRun(step.hostname, save.step.action, save.reply.status, save.reply.output,
                                        save.reply.err))
        elif step.step_id in stored:
            r = stored[step.step_id]
            results.append(ScriptRun(step.hostname, step.action, r.status, r.output, r.error))
        else:
            results.append(ScriptRun(step.hostname, step.action, -1, "", "not run"))
    return results


def execute_failure(script: str, vnfr_name: str | None, results: list[ScriptRun]) -> tuple[str, str | None] | None:
    """The ERROR text and cause of an EXECUTE whose script failed somewhere; None when it succeeded
    everywhere."""
    failed = [r for r in results if r.status != 0]
    if not failed:
        return None
    details = "; ".join(f"EMS ({r.hostname}) {r.action} exited with status {r.status}: "
                        f"{r.err.strip()[-500:] or '(no stderr)'}" for r in failed)
    return (f"EXECUTE {script!r} failed on {len(failed)} of {len(results)} VNFC(s) of {vnfr_name}: {details}",
            failed[0].err.strip() or None)


# -- RESUME ---------------------------------------------------------------------------------------------
def resume_context(failed: Operation, own: OperationContext, original: dict[str, Any], original_action: str,
                   instantiate: bool, vnfr: VirtualNetworkFunctionRecord) -> OperationContext:
    """The context a RESUME runs the failed operation's original request with: the failed one's, told
    what it resumes, overlaid with what this RESUME stored itself (a re-run of it). An INSTANTIATE
    that was allocated, and a SCALE_OUT whose new VNFC the NFVO's records hold, continue with the
    RESUME's VNFR (the NFVO's current records): never allocated or scaled out twice."""
    merged = {**failed.context.model_dump(exclude_unset=True, exclude={"resumes"}),
              "resumes": failed.id, "original_request": original, **own.model_dump(exclude_unset=True)}
    context = OperationContext.model_validate(merged)
    if context.allocated is not None and instantiate:
        context.allocated = vnfr.to_wire()
    if (context.scaled is not None and original_action == "SCALE_OUT" and context.scaled_vnfc
            and vnfr.find_vnfc_instance(id=context.scaled_vnfc) is not None):
        context.scaled = vnfr.to_wire()
    return context


# -- LOG_REQUEST -----------------------------------------------------------------------------------------
_LOG_SEPARATOR = ["", "", "~~~~~~~~~~~~~~~~~~~~~~~~~", "#########################", "~~~~~~~~~~~~~~~~~~~~~~~~~",
                  "", ""]


def script_log(results: Iterable[StepResult]) -> tuple[list[str], list[str]]:
    """The output log (successful script runs) and the error log (every failed step) of LOG_REQUEST,
    as the reference formats them."""
    out: list[str] = []
    err: list[str] = []
    for r in results:
        if r.status == 0 and r.is_script_run:
            out += [f"Output of Script : {r.script}", "", *r.output.splitlines(), *_LOG_SEPARATOR]
        elif r.status != 0:
            err += [f"Error log of Script : {r.script}", "", *r.error.splitlines(), *_LOG_SEPARATOR]
    return out, err


# -- deliveries of NFVO messages (the service) ---------------------------------------------------------------
def reply_at_most_once(reply_to: str | None, correlation_id: str | None) -> bool:
    """An answer to direct reply-to without a correlation id is sent at most once: marked replied
    before it is published, so that a worker taking over after a crash never re-sends it. Re-sent, it
    could reach the requester's next request on the same channel, which cannot tell the answers apart
    (``docs/compatibility.md``, correlation ids and direct reply-to)."""
    return bool(reply_to) and (reply_to or "").startswith(DIRECT_REPLY_TO) and not correlation_id


class Claimed(Enum):
    """What a delivery does with the operation its claim found."""

    FINISHED = "finished"   # answer it from the stored reply (:func:`verdict`)
    RUN = "run"             # this worker holds it: run it
    HELD = "held"           # another live worker holds it: wait (unacknowledged) and claim again


def claimed(op: Operation, owned: bool) -> Claimed:
    if op.state in (DONE, FAILED):
        return Claimed.FINISHED
    return Claimed.RUN if owned else Claimed.HELD


@dataclass(frozen=True)
class Delivered:
    """What the service knows of one delivery of an NFVO message."""

    reply_to: str | None
    correlation_id: str | None
    redelivered: bool
    asked_before: bool = False   # this delivery lost the lease of the operation it ran (it asked already)


class Answer(Enum):
    DUPLICATE = "duplicate"   # acknowledge, nothing sent
    WAIT = "wait"             # the worker that finished it is sending the reply: look again later
    SEND = "send"             # send the stored reply


@dataclass(frozen=True)
class Verdict:
    answer: Answer
    mark_before: bool = False   # mark replied before sending (``reply_at_most_once``)
    mark_after: bool = False    # mark replied once sent


def verdict(op: Operation, delivery: Delivered, now: datetime, *, worker: str, lease_seconds: float) -> Verdict:
    """A delivery of a finished operation: the stored reply is sent when it was not marked sent, or
    when this is a new copy (not redelivered) that asks for an answer. Not marked sent and finished by
    another worker less than a lease time ago: that worker is sending it (dead, it is sent from here
    once a lease time has passed)."""
    asks_again = bool(delivery.reply_to) and not delivery.redelivered and not delivery.asked_before
    if op.reply is None or (op.replied and not asks_again):
        return Verdict(Answer.DUPLICATE)
    if not op.replied and not asks_again and op.worker not in (None, worker):
        if (now - op.updated_at).total_seconds() < lease_seconds:
            return Verdict(Answer.WAIT)
    early = reply_at_most_once(delivery.reply_to, delivery.correlation_id) and not op.replied
    return Verdict(Answer.SEND, mark_before=early, mark_after=not op.replied and not early)


@dataclass(frozen=True)
class Retry:
    """What follows a delivery whose handling failed (the store or the broker failed under it)."""

    give_up: bool     # answer it with an ERROR and acknowledge it (no poison loop)
    pause: float      # else: seconds before it is given back to the broker


def after_failure(failures: int, *, max_failures: int, pause: float) -> Retry:
    return Retry(give_up=failures >= max_failures, pause=min(pause * failures, 10.0))


def keeps_vnfr(vnfr: Any, final: str, action: str) -> bool:
    """Whether a finished operation saves its VNFR (one that succeeded, and did not release it)."""
    return bool(vnfr is not None and getattr(vnfr, "id", None) and getattr(vnfr, "name", None)
                and final == DONE and action != "RELEASE_RESOURCES")
