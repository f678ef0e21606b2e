"""What routing through a topic exchange costs the floor (docs/performance.md, eleventh round). The fan-out
floor's traffic (N VNFCs, ``scripts`` scripts each, bound ``concurrency``) against N queues, alternating:
requests to the default exchange (routing key: the queue's name, the floor until the eleventh round)
and to a topic exchange every queue is bound to (as gvnfm's VNFM sends every command through
``openbaton-exchange``, to which every EMS queue is bound). Printed per mode: the median seconds with
min–max, and the broker's and the floor's CPU seconds.

``python -m bench.exchange_micro [--sizes 1000] [--rounds 5] [--broker URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.config import DEFAULT_BROKER
from bench.floors import FloorResult, FloorServer, fanout_round_trips, run_round_trips

MODES = ("default", "topic")


async def run(broker: str, n: int, rounds: int, scripts: int, concurrency: int) -> dict[str, list[FloorResult]]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    traffic = fanout_round_trips(n, scripts, delivered_files=scripts)
    results: dict[str, list[FloorResult]] = {mode: [] for mode in MODES}
    async with FloorServer(broker, n, workdir) as default, \
            FloorServer(broker, n, workdir, via_exchange=True) as topic:
        for _ in range(rounds):
            for mode, server in zip(MODES, (default, topic), strict=True):
                result = await run_round_trips(server, traffic, concurrency=concurrency)
                assert result.replies_ok == traffic.count, f"{mode}: {result.replies_ok} of {traffic.count} answered"
                results[mode].append(result)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", default="1000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--scripts", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--broker", default=DEFAULT_BROKER)
    args = p.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        results = asyncio.run(run(args.broker, n, args.rounds, args.scripts, args.concurrency))
        for mode, rows in results.items():
            seconds = [r.seconds for r in rows]
            broker = [r.cpu.get("broker", 0.0) for r in rows]
            floor = [r.cpu["server"] + r.cpu["client"] for r in rows]
            print(f"N={n:6d} {mode:7} exchange: {statistics.median(seconds):7.3f} s ({min(seconds):.3f}–"
                  f"{max(seconds):.3f}); broker CPU {statistics.median(broker):6.2f} s; floor CPU "
                  f"{statistics.median(floor):6.2f} s; {len(rows)} rounds", flush=True)


if __name__ == "__main__":
    main()
