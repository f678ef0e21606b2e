"""Runs a Plan: stages in order, the steps of a stage in parallel (bounded), each stage's results
recorded in one transaction. The first failure stops the plan after the steps already running in
that stage have finished (they are recorded too, so a RESUME skips them).

Recording is pipelined one stage deep: stage k's transaction is committed while stage k+1 runs, and
stage k+1 is recorded only after stage k's commit has finished, so what is durable is always a prefix
of the plan (script-major order survives a crash). A crash before stage k's commit leaves stage k to
be sent again with the same correlation ids, which the EMS answers from its result cache: the same
window the VNFM has between an EMS reply and its commit anyway. The plan returns (and the operation
replies) only after every record is committed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gvnfm.catalogue.ems import EmsReply
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
        what = f"script {step.script!r} of event {step.event}" if step.is_script else f"{step.action} {step.script!r}"
        super().__init__(f"EMS ({step.hostname}) had the following error: {what} exited with status "
                         f"{reply.status}: {reply.err.strip() or '(no stderr)'}")


Recorder = Callable[[list[StepOutcome]], Awaitable[None]]
Progress = Callable[[Step, str], None]


def _consume_outcome(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("event=record_failed_after_cancel error=%r", str(task.exception()))


class PlanExecutor:
    def __init__(self, ems: EmsClient, *, concurrency: int = 32, script_timeout: float | None = None) -> None:
        self.ems = ems
        self.concurrency = max(1, concurrency)
        self.script_timeout = script_timeout

    async def run(self, plan: Plan, *, op_id: str, record: Recorder | None = None,
                  progress: Progress | None = None, limiter: asyncio.Semaphore | None = None) -> list[StepOutcome]:
        """Run every stage; raises StepFailed with the first failure. ``limiter`` bounds EMS commands
        across operations (the VNFM-wide bound); ``concurrency`` bounds this operation."""
        outcomes: list[StepOutcome] = []
        local = asyncio.Semaphore(self.concurrency)

        async def one(step: Step) -> StepOutcome:
            async with local:
                if limiter is not None:
                    async with limiter:
                        return await self._send(step, op_id, progress)
                return await self._send(step, op_id, progress)

        committing: asyncio.Task[None] | None = None
        try:
            for stage in plan.stages:
                results = await asyncio.gather(*(one(s) for s in stage.steps))
                outcomes.extend(results)
                if record is not None:
                    if committing is not None:
                        await committing       # commits stay in plan order, one stage behind at most
                    committing = asyncio.ensure_future(record(results))   # the whole stage in one transaction
                failed = next((o for o in results if o.reply.status != 0), None)
                if failed is not None:
                    if committing is not None:
                        await committing
                    raise StepFailed(failed)
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                # cancelled while a commit runs: let it finish on its own (a half-done transaction
                # is rolled back by the store), and keep its outcome from being reported as lost
                committing.add_done_callback(_consume_outcome)
        return outcomes

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
        reply = await self.ems.send(step.hostname, command, correlation_id=f"{op_id}:{step.step_id}",
                                    timeout=timeout)
        duration = loop.time() - t0
        log.info("event=step op=%s step=%s hostname=%s status=%s duration=%.3f",
                 op_id, step.step_id, step.hostname, reply.status, duration)
        if progress:
            progress(step, "done" if reply.status == 0 else "failed")
        return StepOutcome(step, reply, started, duration)
