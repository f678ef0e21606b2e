"""``python -m bench``: run the cases, print the table, optionally write JSON."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from rich.console import Console

from bench.config import CASES, DEFAULT_BROKER, DEFAULT_PG, EXTRA_CASES, BenchConfig
from bench.report import Report
from bench.runner import run_bench


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sizes wants integers separated by commas, not {text!r}") from exc
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive integers")
    return sizes


def _cases(text: str) -> tuple[str, ...]:
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CASES + EXTRA_CASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--cases: choose among {', '.join(CASES + EXTRA_CASES)}")
    return chosen


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=(
        "Benchmark gvnfm's VNFM and EMS on RabbitMQ; every figure is a ratio against a floor measured "
        "in the same run on the same broker (see docs/performance.md)."))
    p.add_argument("--broker", default=DEFAULT_BROKER, help="AMQP URL (default: %(default)s)")
    p.add_argument("--pg", default=DEFAULT_PG,
                   help="many-ns: PostgreSQL server for the two-worker set-up, '' to skip it (default: %(default)s)")
    p.add_argument("--pg-workers", type=_sizes, default=[2], metavar="W,W",
                   help="many-ns: VNFM workers on PostgreSQL, one set-up per count (default: 2; 1,2 also "
                        "shows what the store costs apart from the second worker)")
    p.add_argument("--many", default="100x10", metavar="OPSxVNFCS",
                   help="many-ns: INSTANTIATEs at once × VNFCs each (default: %(default)s)")
    p.add_argument("--sizes", type=_sizes, default=[10, 100, 1000],
                   help="VNFC counts for fan-out, storm and memory (default: 10,100,1000)")
    p.add_argument("--scripts", type=int, default=200, help="scripts of the per-script case (default: 200)")
    p.add_argument("--fanout-scripts", type=int, default=3, help="scripts per VNFC in fan-out (default: 3)")
    p.add_argument("--concurrency", type=int, default=32, help="the VNFM's per-operation bound (default: 32)")
    p.add_argument("--no-sequential", action="store_true", help="skip fan-out with concurrency 1")
    p.add_argument("--floor-channel-per-queue", action="store_true",
                   help="the floor's consumers on a channel each, as gvnfm's EMS fleet before the tenth round "
                        "(default: one channel, as the fleet's)")
    p.add_argument("--floor-via-exchange", action="store_true",
                   help="the floor's requests through a topic exchange its queues are bound to, as gvnfm's VNFM "
                        "sends through openbaton-exchange (default: the default exchange)")
    p.add_argument("--repeat", type=int, default=5,
                   help="alternating gvnfm/floor pairs per figure: median ratio and its min–max; capped so "
                        "N × repeat ≤ 5000 (default: 5)")
    p.add_argument("--cases", type=_cases, default=CASES,
                   help=f"subset of {','.join(CASES + EXTRA_CASES)} (default: {','.join(CASES)})")
    p.add_argument("--script-sleep", type=float, default=0.05,
                   help="latency case: seconds each script sleeps (default: %(default)s)")
    p.add_argument("--stomp-broker", metavar="URL",
                   help="also measure per-script and fan-out N=100 with the VNFM and the EMSs over STOMP at URL "
                        "(RabbitMQ: stomp://guest:guest@127.0.0.1:61613/); the NFVO and the floor stay on AMQP")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="afterwards profile fan-out at the largest size (cProfile of VNFM and fleet) into DIR")
    p.add_argument("--workdir", type=Path, help="keep logs, stores and configs here (default: a temp dir)")
    p.add_argument("--vnfm-log-level", default="INFO", help="log level of the VNFM under test (default: INFO)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one operation")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _interruptible(cfg: BenchConfig) -> Report:
    """``run_bench`` that SIGTERM and SIGINT cancel (also when started in the background, where SIGINT
    is ignored): the cancellation runs every ``finally``, so the processes stop and the rigs delete
    their queues and exchanges before the bench exits."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await run_bench(cfg)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.verbose:
        logging.getLogger("bench").setLevel(logging.DEBUG)
    cfg = BenchConfig(broker=args.broker, sizes=args.sizes, scripts=max(1, args.scripts),
                      fanout_scripts=max(1, args.fanout_scripts), concurrency=max(1, args.concurrency),
                      sequential=not args.no_sequential, repeat=max(1, args.repeat), cases=args.cases,
                      workdir=args.workdir, profile=args.profile, vnfm_log_level=args.vnfm_log_level,
                      op_timeout=args.timeout, script_sleep=max(0.0, args.script_sleep),
                      stomp_broker=args.stomp_broker, pg_url=args.pg or None, many_ops=int(args.many.split("x")[0]),
                      many_vnfcs=int(args.many.split("x")[1]), floor_channel_per_queue=args.floor_channel_per_queue,
                      floor_via_exchange=args.floor_via_exchange, pg_workers=tuple(args.pg_workers))
    try:
        report = asyncio.run(_interruptible(cfg))
    except asyncio.CancelledError:
        print("bench interrupted: its processes were stopped and its broker objects deleted", file=sys.stderr)
        return 130
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    report.print(console)
    if args.json:
        report.write_json(args.json)
        console.print(f"results written to {args.json}")
    if args.markdown:
        args.markdown.write_text(report.markdown())
        console.print(f"table written to {args.markdown}")
    return 1 if report.errors else 0
