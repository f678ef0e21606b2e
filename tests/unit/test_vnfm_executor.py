"""The executor records each step as its reply arrives (group commit), one transaction at a time, in
arrival order; later stages run while earlier results commit, up to a backlog of uncommitted results;
a failed commit stops the plan at the next stage; the plan returns only after the last commit: what is
durable is always a prefix of the plan."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from gvnfm.catalogue.ems import EmsReply
from gvnfm.vnfm.executor import PlanExecutor, StepFailed, StepJournal, StepOutcome
from gvnfm.vnfm.plan import Plan, Stage, Step


class ScriptedEms:
    """Answers every command at once; ``fail`` names step ids that get status 1."""

    def __init__(self, log: list[str], fail: set[str] | None = None) -> None:
        self.log = log
        self.fail = fail or set()

    async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                   timeout: float | None = None) -> EmsReply:
        step_id = correlation_id.split(":", 1)[1]
        self.log.append(f"send {step_id}")
        await asyncio.sleep(0)
        return EmsReply(output="", err="boom" if step_id in self.fail else "", status=1 if step_id in self.fail else 0)


def plan_of(stages: int, width: int = 2) -> Plan:
    return Plan([Stage([Step(step_id=f"s{k}/h{i}", hostname=f"h{i}", action="EXECUTE",
                             command={"action": "EXECUTE", "payload": f"s{k}.sh"}, event="INSTANTIATE",
                             script_index=k, script=f"s{k}.sh") for i in range(width)]) for k in range(stages)])


class SlowRecorder:
    """A store whose commits take a while; it notes when each starts and ends."""

    def __init__(self, log: list[str], delay: float = 0.02, fail_at: int | None = None) -> None:
        self.log = log
        self.delay = delay
        self.fail_at = fail_at
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self.durable: list[str] = []      # step ids in commit order

    async def __call__(self, outcomes: list[StepOutcome]) -> None:
        index = self.calls
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        stages = sorted({o.step.script_index for o in outcomes})
        self.log.append(f"commit-start {stages}")
        try:
            await asyncio.sleep(self.delay)
            if index == self.fail_at:
                self.log.append("commit-failed")
                raise RuntimeError("database is gone")
            self.durable.extend(o.step.step_id for o in outcomes)
            for k in stages:
                self.log.append(f"commit-end {k}")
        finally:
            self.active -= 1


def is_prefix_of_plan(durable: list[str], plan: Plan) -> bool:
    """Whether the committed steps are whole stages followed by part of one stage at most."""
    remaining = list(durable)
    for stage in plan.stages:
        ids = {s.step_id for s in stage.steps}
        here = [d for d in remaining[:len(ids)] if d in ids]
        if len(here) < len(ids):
            return all(d in ids for d in remaining)
        remaining = remaining[len(ids):]
    return not remaining


async def test_commits_overlap_the_next_stages_but_stay_in_order_and_finish_before_return() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log)
    plan = plan_of(4)
    outcomes = await PlanExecutor(ScriptedEms(log)).run(plan, op_id="op", record=recorder)
    assert len(outcomes) == 8
    assert recorder.max_active == 1                     # one transaction at a time
    assert sorted(recorder.durable) == sorted(s.step_id for s in plan.steps())   # every step, once
    assert is_prefix_of_plan(recorder.durable, plan)
    assert log[-1] == "commit-end 3"                    # nothing returns before the last commit
    # stage 1 was sent before stage 0 was durable: the store is off the critical path
    assert log.index("send s1/h0") < log.index("commit-end 0")


async def test_a_stage_waits_when_the_uncommitted_results_exceed_the_backlog() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log, delay=0.05)
    plan = plan_of(6)                                   # 2 steps per stage
    await PlanExecutor(ScriptedEms(log), backlog=3).run(plan, op_id="op", record=recorder)
    assert is_prefix_of_plan(recorder.durable, plan) and len(recorder.durable) == 12
    # with at most 3 uncommitted, stage 2 (results 5, 6) waits for the first commit
    assert log.index("commit-end 0") < log.index("send s2/h0")
    for k in range(2, 6):                               # and every later stage for an earlier one
        assert log.index(f"commit-end {k - 2}") < log.index(f"send s{k}/h0")


async def test_steps_are_committed_as_they_arrive_without_waiting_for_the_stage() -> None:
    log: list[str] = []

    class SlowSecondHost(ScriptedEms):
        async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                       timeout: float | None = None) -> EmsReply:
            if hostname == "h1":
                await asyncio.sleep(0.2)
            return await super().send(hostname, command, correlation_id=correlation_id, timeout=timeout)

    recorder = SlowRecorder(log, delay=0.01)
    await PlanExecutor(SlowSecondHost(log)).run(plan_of(1), op_id="op", record=recorder)
    assert recorder.durable == ["s0/h0", "s0/h1"]
    assert recorder.calls == 2        # h0 was durable long before h1 answered


async def test_the_durable_part_is_a_prefix_of_the_plan_at_every_commit() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log, delay=0.003)
    plan = plan_of(6, width=5)

    class Jittery(ScriptedEms):
        async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                       timeout: float | None = None) -> EmsReply:
            await asyncio.sleep(0.001 * (hash(correlation_id) % 7))
            return await super().send(hostname, command, correlation_id=correlation_id, timeout=timeout)

    snapshots: list[list[str]] = []
    original = recorder.__call__

    async def watching(outcomes: list[StepOutcome]) -> None:
        await original(outcomes)
        snapshots.append(list(recorder.durable))

    await PlanExecutor(Jittery(log)).run(plan, op_id="op", record=watching)
    assert snapshots and all(is_prefix_of_plan(s, plan) for s in snapshots)
    assert len(snapshots[-1]) == 30


async def test_a_failed_stage_is_recorded_before_the_failure_is_raised() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log)
    with pytest.raises(StepFailed) as info:
        await PlanExecutor(ScriptedEms(log, fail={"s1/h1"})).run(plan_of(4), op_id="op", record=recorder)
    assert info.value.outcome.step.step_id == "s1/h1"
    assert log[-1] == "commit-end 1"
    assert not any(e.startswith("send s2") for e in log)   # nothing after the failed stage


@pytest.mark.parametrize("fail_at", [0, 3], ids=["first-commit", "later-commit"])
async def test_a_commit_failure_stops_the_plan_at_the_next_stage(fail_at: int) -> None:
    log: list[str] = []

    class Slow(ScriptedEms):
        async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                       timeout: float | None = None) -> EmsReply:
            await asyncio.sleep(0.01)
            return await super().send(hostname, command, correlation_id=correlation_id, timeout=timeout)

    recorder = SlowRecorder(log, delay=0.005, fail_at=fail_at)
    plan = plan_of(20)
    with pytest.raises(RuntimeError, match="database is gone"):
        await PlanExecutor(Slow(log), linger=0.02).run(plan, op_id="op", record=recorder)
    # the commits before the failing one stay, nothing is committed after it: the durable part is still
    # a prefix of the plan (a later commit would make steps durable behind a hole)
    assert recorder.calls == fail_at + 1, log
    assert is_prefix_of_plan(recorder.durable, plan), recorder.durable
    assert (recorder.durable == []) == (fail_at == 0)
    failed_at = log.index("commit-failed")
    later = {e.split()[1].split("/")[0] for e in log[failed_at:] if e.startswith("send")}
    assert len(later) <= 1                              # at most the stage in flight
    assert not any(e.startswith("send s19/") for e in log)   # the plan stopped


async def test_cancellation_while_a_commit_runs_lets_the_commit_finish() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log, delay=0.2)

    class Hanging(ScriptedEms):
        async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                       timeout: float | None = None) -> EmsReply:
            if correlation_id.endswith("s1/h0"):
                await asyncio.sleep(3600)
            return await super().send(hostname, command, correlation_id=correlation_id, timeout=timeout)

    task = asyncio.ensure_future(PlanExecutor(Hanging(log)).run(plan_of(3), op_id="op", record=recorder))
    async with asyncio.timeout(5):
        while not any(e.startswith("commit-start [0") for e in log):
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(60):      # hang guard: the commit that ran finishes after the cancellation
        while "commit-end 0" not in log:
            await asyncio.sleep(0.005)


def outcome_of(step: Step) -> StepOutcome:
    return StepOutcome(step, EmsReply(output="", err="", status=0), started_at=datetime.now(UTC), duration=0.0)


async def test_results_of_a_running_stage_gather_into_one_transaction_until_the_stage_ends() -> None:
    steps = plan_of(1, width=10).steps()
    for linger, transactions in ((60.0, 1), (0.0, 2)):
        recorder = SlowRecorder([], delay=0.0)
        journal = StepJournal(recorder, linger=linger)
        for step in steps[:5]:
            journal.add(outcome_of(step))
        await asyncio.sleep(0)           # the writer starts: with a linger it waits for more
        await asyncio.sleep(0)
        for step in steps[5:]:
            journal.add(outcome_of(step))
        await journal.wait()             # the stage is over: a waiter commits at once
        assert journal.transactions == transactions and recorder.calls == transactions
        assert recorder.durable == [s.step_id for s in steps]


async def test_a_full_batch_does_not_linger() -> None:
    steps = plan_of(1, width=8).steps()
    recorder = SlowRecorder([], delay=0.0)
    journal = StepJournal(recorder, linger=3600.0, max_batch=4)
    for step in steps[:4]:
        journal.add(outcome_of(step))
    async with asyncio.timeout(5):
        while recorder.calls == 0:       # committed without flush, long before the linger ends
            await asyncio.sleep(0.001)
    assert recorder.durable == [s.step_id for s in steps[:4]]
    for step in steps[4:]:
        journal.add(outcome_of(step))
    await journal.wait()                 # a waiter does not wait for the linger either
    assert recorder.durable == [s.step_id for s in steps]


class Tracked(ScriptedEms):
    """Answers after a delay that differs per host (later steps may end first); notes the most commands
    in flight at once and the most tasks alive while they run."""

    def __init__(self, log: list[str], delays: dict[str, float], fail: set[str] | None = None,
                 raises: set[str] | None = None) -> None:
        super().__init__(log, fail)
        self.delays = delays
        self.raises = raises or set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.most_tasks = 0
        self.started: list[str] = []

    async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                   timeout: float | None = None) -> EmsReply:
        self.started.append(correlation_id.split(":", 1)[1])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))
        try:
            await asyncio.sleep(self.delays.get(hostname, 0.0))
            if correlation_id.split(":", 1)[1] in self.raises:
                raise RuntimeError("the EMS client failed")
            return await super().send(hostname, command, correlation_id=correlation_id, timeout=timeout)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("bound", [1, 4])
async def test_a_wide_stage_starts_its_steps_in_order_within_the_bound_and_holds_no_task_per_step(
        bound: int) -> None:
    log: list[str] = []
    plan = plan_of(1, width=200)
    ems = Tracked(log, delays={f"h{i}": 0.002 * (i % 3) for i in range(200)})
    baseline = len(asyncio.all_tasks())
    outcomes = await PlanExecutor(ems, concurrency=bound).run(plan, op_id="op")   # type: ignore[arg-type]
    assert [o.step.step_id for o in outcomes] == [s.step_id for s in plan.steps()]   # the plan's order
    assert ems.started == [s.step_id for s in plan.steps()]                          # started in that order
    assert ems.most_in_flight == bound
    # a task per worker (none at a bound of 1: the worker runs in the caller's task), not one per step
    assert ems.most_tasks <= baseline + (bound if bound > 1 else 0)


async def test_a_step_that_raises_stops_the_stage_from_starting_more_and_propagates() -> None:
    log: list[str] = []
    plan = plan_of(2, width=50)
    ems = Tracked(log, delays={f"h{i}": 0.0 if i == 3 else 0.005 for i in range(50)}, raises={"s0/h3"})
    with pytest.raises(RuntimeError, match="the EMS client failed"):
        await PlanExecutor(ems, concurrency=4).run(plan, op_id="op")   # type: ignore[arg-type]
    await asyncio.sleep(0.05)            # what was in flight ends; nothing more starts meanwhile
    assert ems.started == ["s0/h0", "s0/h1", "s0/h2", "s0/h3"]   # the steps in flight when it raised
    assert ems.in_flight == 0


async def test_a_failed_step_ends_the_plan_after_every_step_of_its_stage_ran_and_was_recorded() -> None:
    log: list[str] = []
    recorder = SlowRecorder(log, delay=0.0)
    plan = plan_of(2, width=50)
    ems = Tracked(log, delays={f"h{i}": 0.0 if i == 2 else 0.001 for i in range(50)}, fail={"s0/h2"})
    with pytest.raises(StepFailed) as info:
        await PlanExecutor(ems, concurrency=4).run(plan, op_id="op", record=recorder)   # type: ignore[arg-type]
    assert info.value.outcome.step.step_id == "s0/h2"
    assert ems.started == [s.step_id for s in plan.stages[0].steps]          # the whole stage, not stage 1
    assert sorted(recorder.durable) == sorted(s.step_id for s in plan.stages[0].steps)
