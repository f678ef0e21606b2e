"""The VNFM's executor alone: CPU and traced memory per step of one wide stage, no broker.

``PlanExecutor.run`` over the VNFM's ``EmsClient`` over a stand-in transport that answers after one turn
of the event loop (``bench.rpc_micro --stub``'s), a journal whose commits take one loop turn, the
VNFM-wide limiter; beside it, ``ems``: the same commands through the ``EmsClient`` alone, as many at once,
sent by that many coroutines taking the next step in turn (the least any executor does), so that
``executor − ems`` is what the executor adds per step. Each round runs both at a bound of 1 and
of 32; the medians of ``--rounds`` rounds are printed, with the min–max. ``--memory`` also prints the
peak of the memory tracemalloc traced while one stage of ``--memory`` steps ran, per step (the tasks and
coroutines a stage holds at once). Nothing is logged, as at level WARNING.

To compare two versions of gvnfm, run it with ``PYTHONPATH=<their src>:<this folder>`` alternately
(docs/performance.md, fifteenth round).

``python -m bench.executor_micro [--count 3000] [--rounds 5] [--memory 10000]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc

from bench.rpc_micro import _StubTransport
from gvnfm.vnfm.ems_client import EmsClient
from gvnfm.vnfm.executor import PlanExecutor, StepOutcome
from gvnfm.vnfm.plan import Plan, Stage, Step

BOUNDS = (1, 32)
MODES = ("ems", "executor")
#: the VNFM's default bound across operations (``VnfmSettings.concurrency`` beside it is per operation)
LIMITER = 64


def _stage(count: int) -> Plan:
    return Plan([Stage([Step(step_id=f"INSTANTIATE/0/h{i}/", hostname=f"h{i}", action="EXECUTE",
                             command={"action": "EXECUTE", "payload": "s.sh"}, event="INSTANTIATE",
                             script_index=0, script="s.sh") for i in range(count)])])


async def _record(_outcomes: list[StepOutcome]) -> None:
    await asyncio.sleep(0)


async def once(mode: str, bound: int, count: int, *, trace: bool = False) -> tuple[float, float]:
    """(CPU µs, traced peak bytes) per step of one stage of ``count`` steps."""
    ems = EmsClient(_StubTransport(), timeout=10)  # type: ignore[arg-type]
    plan = _stage(count)
    gc.collect()
    if trace:
        tracemalloc.start()
    started = time.process_time()
    if mode == "executor":
        await PlanExecutor(ems, concurrency=bound).run(plan, op_id="op", record=_record,
                                                       limiter=asyncio.Semaphore(LIMITER))
    else:
        steps = iter(plan.steps())

        async def worker() -> None:
            for step in steps:
                await ems.send(step.hostname, dict(step.command), correlation_id=f"op:{step.step_id}")

        await asyncio.gather(*(worker() for _ in range(min(bound, count))))
    cpu = (time.process_time() - started) / count * 1e6
    peak = 0
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return cpu, peak / count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.executor_micro")
    p.add_argument("--count", type=int, default=3000, help="steps of the stage timed (default: 3000)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--memory", type=int, default=0, metavar="STEPS",
                   help="also trace the memory of one stage of STEPS steps (default: not)")
    args = p.parse_args(argv)
    count, rounds = max(1, args.count), max(1, args.rounds)
    for bound in BOUNDS:
        for mode in MODES:
            cpus = [asyncio.run(once(mode, bound, count))[0] for _ in range(rounds)]
            line = (f"{mode:8} c={bound:<2}  CPU {statistics.median(cpus):5.1f} µs ({min(cpus):.0f}–{max(cpus):.0f})"
                    " per step")
            if args.memory > 0:
                _, peak = asyncio.run(once(mode, bound, args.memory, trace=True))
                line += f"  traced peak {peak / 1024:.2f} KiB per step of {args.memory}"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
