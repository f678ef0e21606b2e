"""The EMS fleet under test, as its own process: gvnfm's ``EmsFleet`` (N agents over one broker
connection, each with its own queue, folders and registration), as ``gvnfm ems --hosts N`` runs it,
plus a hold mode for the registration storm.

``python -m bench.fleet_proc --url U --exchange X --endpoint E --prefix P --count N --root DIR [--hold]``

Prints ``READY`` once every agent consumes its queue (and, without ``--hold``, has registered).
With ``--hold`` the agents do not register until SIGUSR1; then all register at once and
``REGISTERED <n> <seconds>`` is printed. On SIGTERM the fleet stops and a JSON line with its counters
is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from gvnfm.ems.agent import EmsAgent, EmsFleet
from gvnfm.ems.config import EmsConfig
from gvnfm.logs import setup_logging


async def _not_yet() -> bool:
    """Stands in for ``EmsAgent.register`` while the fleet holds its registrations. It says "done", so
    the agent starts no retry loop of its own (which, once the real method is back, would register a
    second time); the fleet registers every agent itself at the go."""
    return True


async def run(args: argparse.Namespace) -> dict[str, int]:
    config = EmsConfig(broker_url=args.url, exchange=args.exchange, type=args.endpoint, hostname=args.prefix,
                       root=args.root)
    fleet = EmsFleet(config, args.count, hostname_prefix=args.prefix)
    loop = asyncio.get_running_loop()
    stop, go = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    if args.hold:
        for agent in fleet.agents:
            agent.register = _not_yet  # type: ignore[method-assign]
    await fleet.start()
    print("READY", len(fleet.agents), flush=True)
    if args.hold:
        waiter = asyncio.ensure_future(go.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if go.is_set():
            t0 = time.perf_counter()
            for agent in fleet.agents:
                del agent.register   # the agent's own method again
            await asyncio.gather(*(EmsAgent.register(a) for a in fleet.agents))
            print("REGISTERED", len(fleet.agents), f"{time.perf_counter() - t0:.6f}", flush=True)
    await stop.wait()
    await fleet.stop()
    return {"agents": len(fleet.agents), "registrations": sum(a.registrations for a in fleet.agents),
            "executions": sum(a.executions for a in fleet.agents)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_proc")
    p.add_argument("--url", required=True)
    p.add_argument("--exchange", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--hold", action="store_true")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    stats = asyncio.run(run(args))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
