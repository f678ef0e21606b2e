"""Runs a Plan: stages in order, the steps of a stage in parallel (bounded, on that many workers). A failed
step stops the plan after every step of its stage has run (they are recorded too); a step whose send
raises stops its stage from starting more and ends the plan at once.

Invariants of the recording (``StepJournal``, a group commit; docs/architecture.md, *The plan*):
- what is durable is always a prefix of the plan (a stage's steps are queued before the next stage
  is sent; commits are in queue order and stop at the first failure);
- what is not yet durable is bounded in time (linger plus one transaction) and count (``backlog``);
- a failed commit stops the plan at the next stage; the plan returns only after every step is committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gvnfm.catalogue.ems import EmsReply
from gvnfm.catalogue.messages import FailedStep
from gvnfm.ops import metrics
from gvnfm.vnfm.ems_client import EmsClient
from gvnfm.vnfm.plan import Plan, Step

log = logging.getLogger(__name__)

#: Seconds the VNFM waits for a script's reply beyond the script's own time limit.
SCRIPT_REPLY_GRACE = 30.0


@dataclass
class StepOutcome:
    step: Step
    reply: EmsReply
    started_at: datetime
    duration: float


class StepFailed(Exception):
    def __init__(self, outcome: StepOutcome) -> None:
        self.outcome = outcome
        step, reply = outcome.step, outcome.reply
        #: what the ERROR answer says of it (``failedStep``), its text the exception's
        self.failed_step = FailedStep(hostname=step.hostname, action=step.action, event=step.event,
                                      script=step.script, status=reply.status)
        super().__init__(self.failed_step.describe(reply.err))


Recorder = Callable[[list[StepOutcome]], Awaitable[None]]
Progress = Callable[[Step, str], None]


#: Seconds the journal lets step results gather before a transaction, while their stage still runs
#: (the end of a plan and any waiter commit at once: not on the critical path). 0.1 s rather than
#: 0.02 s: a fifth of the transactions in a wide or long plan (docs/performance.md, sixth round); a
#: crash then re-sends up to 0.1 s more of finished steps, which the EMS answers from its result cache.
JOURNAL_LINGER = 0.1
#: Results that start a transaction at once, however young.
JOURNAL_MAX_BATCH = 256


class StepJournal:
    """Commits step outcomes in arrival order, batched: one ``record`` call (one transaction) at a
    time. While a stage is still running, results gather for at most ``linger`` seconds (or
    ``max_batch`` of them) before a transaction, so a wide stage costs a few transactions, not one
    per VNFC; anyone waiting starts it at once. After a failed
    commit nothing more is committed (the durable part stays a prefix) and ``wait`` raises it."""

    def __init__(self, record: Recorder, *, linger: float = JOURNAL_LINGER,
                 max_batch: int = JOURNAL_MAX_BATCH) -> None:
        self._record = record
        self.linger = linger
        self.max_batch = max(1, max_batch)
        self._pending: list[StepOutcome] = []
        self.queued = 0
        self.committed = 0
        self.transactions = 0
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._now = asyncio.Event()          # set: commit what is pending without lingering

    def add(self, outcome: StepOutcome) -> None:
        if self._error is not None:
            return
        self._pending.append(outcome)
        self.queued += 1
        if len(self._pending) >= self.max_batch:
            self._now.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
            self._writer.add_done_callback(_retrieve)

    @property
    def uncommitted(self) -> int:
        return self.queued - self.committed

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def _drain(self) -> None:
        while self._pending and self._error is None:
            if self.linger > 0 and not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), self.linger)
            self._now.clear()
            batch, self._pending = self._pending, []
            try:
                await self._record(batch)
            except BaseException as exc:
                self._error = exc
                raise
            self.committed += len(batch)
            self.transactions += 1

    async def wait(self, count: int | None = None) -> None:
        """Until the first ``count`` queued outcomes (default: all) are committed."""
        target = self.queued if count is None else count
        while self.committed < target:
            if self._error is not None:
                raise self._error
            writer = self._writer
            assert writer is not None, "outcomes queued without a writer"
            self._now.set()
            await asyncio.shield(writer)   # a cancelled wait leaves the commit running
        if self._error is not None and self.committed < target:
            raise self._error


def _retrieve(task: asyncio.Task[None]) -> None:
    """A writer's failure is raised by ``wait``; this keeps asyncio from reporting it as lost, and
    logs one that nobody waited for (the plan was cancelled while it committed)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("event=record_failed error=%r", str(task.exception()))


class PlanExecutor:
    def __init__(self, ems: EmsClient, *, concurrency: int = 32, script_timeout: float | None = None,
                 backlog: int = JOURNAL_MAX_BATCH, linger: float = JOURNAL_LINGER) -> None:
        self.ems = ems
        self.concurrency = max(1, concurrency)
        self.script_timeout = script_timeout
        #: uncommitted step results beyond which a stage waits for the journal before it starts
        self.backlog = max(1, backlog)
        #: how long the journal lets results gather while a stage still runs (``StepJournal``)
        self.linger = linger

    async def run(self, plan: Plan, *, op_id: str, record: Recorder | None = None,
                  progress: Progress | None = None, limiter: asyncio.Semaphore | None = None) -> list[StepOutcome]:
        """Run every stage; raises StepFailed with the first failure. ``limiter`` bounds EMS commands
        across operations (the VNFM-wide bound); ``concurrency`` bounds this operation."""
        outcomes: list[StepOutcome] = []

        async def send(step: Step) -> StepOutcome:
            if limiter is not None:
                async with limiter:
                    return await self._send(step, op_id, progress)
            return await self._send(step, op_id, progress)

        journal = StepJournal(record, linger=self.linger) if record is not None else None
        for stage in plan.stages:
            if journal is not None:
                journal.raise_if_failed()              # the store failed: no further stage
                if journal.uncommitted > self.backlog:
                    await journal.wait(journal.queued - self.backlog)
            results = await self._stage(stage.steps, send, journal)
            outcomes.extend(results)
            failed = next((o for o in results if o.reply.status != 0), None)
            if failed is not None:
                if journal is not None:
                    await journal.wait()
                raise StepFailed(failed)
        if journal is not None:
            await journal.wait()
        return outcomes

    async def _stage(self, steps: list[Step], send: Callable[[Step], Awaitable[StepOutcome]],
                     journal: StepJournal | None) -> list[StepOutcome]:
        """Every step of a stage, at most ``concurrency`` at once, started in the stage's order; the
        outcomes in that order, each queued on the journal as it arrives. ``concurrency`` workers take
        the next step in turn (at a bound of 1, the one worker runs in the caller's task): a task per
        worker, not per step,
        so a stage of 10,000 steps holds 32 tasks, not 10,000 waiting on a semaphore (docs/performance.md,
        fifteenth round). A failed step (a status other than 0) stops nothing here: every step of the
        stage runs (an ad-hoc EXECUTE runs on every VNFC whatever one of them answers) and the caller
        raises the first failure after the stage. A step that raises ends its worker, the others start no
        further step (they finish the one in flight), and the exception propagates at once, as from
        ``asyncio.gather``."""
        results: list[StepOutcome | None] = [None] * len(steps)
        queue = iter(enumerate(steps))
        stopped = False

        async def worker() -> None:
            nonlocal stopped
            for index, step in queue:
                try:
                    outcome = await send(step)
                except BaseException:
                    stopped = True
                    raise
                results[index] = outcome
                if journal is not None:
                    journal.add(outcome)
                if stopped:
                    return

        workers = min(self.concurrency, len(steps))
        if workers == 1:
            await worker()
        elif workers > 1:
            await asyncio.gather(*(worker() for _ in range(workers)))
        return [r for r in results if r is not None]

    async def _send(self, step: Step, op_id: str, progress: Progress | None) -> StepOutcome:
        if progress:
            progress(step, "running")
        command = dict(step.command)
        timeout = None
        if self.script_timeout is not None and step.is_script:
            command["timeout"] = self.script_timeout
            timeout = self.script_timeout + SCRIPT_REPLY_GRACE
        started = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        metrics.STEPS_IN_FLIGHT.inc()
        try:
            reply = await self.ems.send(step.hostname, command, correlation_id=f"{op_id}:{step.step_id}",
                                        timeout=timeout)
        finally:
            metrics.STEPS_IN_FLIGHT.dec()
        duration = loop.time() - t0
        metrics.STEP_SECONDS.labels(step.event).observe(duration)
        log.info("event=step op=%s step=%s hostname=%s status=%s duration=%.3f",
                 op_id, step.step_id, step.hostname, reply.status, duration)
        if progress:
            progress(step, "done" if reply.status == 0 else "failed")
        return StepOutcome(step, reply, started, duration)
