"""The EMS's side of one command, alone: one agent of gvnfm's fleet (``bench.fleet_proc --count 1``, its
own process, as in the bench) against the floor's consumer (``bench.floor_server``), both driven by the
floor's raw client, one command at a time (the reference's order, c=1):

- ``save``: SAVE_SCRIPTS of an empty script, as the VNFM sends it; the floor answers at once;
- ``execute``: EXECUTE of that script (a keyed command: the spool, the wrapper, bash); the floor runs the
  same bash under its spool (body ``w``: ``bench.floor_server``'s spool floor).

Per round trip: the wall time, and the CPU time of the consumer's process (the agent's, or the floor
server's, the scripts they ran included). Each round measures gvnfm's agent and the floor alternately;
medians of ``--rounds`` rounds with their min–max (docs/performance.md, fourteenth round). To compare
two versions, run it with ``PYTHONPATH=<their src>:<this folder>`` alternately.

``python -m bench.ems_micro [--count 300] [--rounds 5] [--broker URL] [--profile FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.amqp import RpcClient, connect
from bench.config import DEFAULT_BROKER
from bench.fleet import FleetProcess
from bench.floors import FloorServer
from gvnfm.catalogue import ems
from gvnfm.catalogue.queues import ems_actions_queue

KINDS = ("save", "execute")


Cpu = Callable[[], float]
Figures = dict[tuple[str, str], tuple[float, float]]   # (side, kind) -> (wall µs, consumer CPU µs) per command


async def _batch(client: RpcClient, queue: str, bodies: list[bytes], cpu: Cpu) -> tuple[float, float]:
    """(wall µs, consumer CPU µs) per round trip of ``bodies`` sent one at a time, each with a correlation
    id of its own (the agent answers a correlation id it has seen from its result cache); every answer
    must say status 0."""
    ids = [f"{uuid.uuid4().hex}:{i}" for i in range(len(bodies))]
    c0, t0 = cpu(), time.perf_counter()
    answers = [await client.call(queue, body, timeout=30, correlation_id=cid)
               for body, cid in zip(bodies, ids, strict=True)]
    wall, used = time.perf_counter() - t0, cpu() - c0
    failed = [a for a in answers if json.loads(a).get("status") != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(bodies)} commands failed, e.g. {failed[0]!r:.300}")
    return wall / len(bodies) * 1e6, used / len(bodies) * 1e6


def _gvnfm_bodies(count: int) -> dict[str, list[bytes]]:
    save = json.dumps(ems.save_scripts("s.sh", base64.b64encode(b"").decode(), ems.DEFAULT_SCRIPTS_PATH)).encode()
    execute = json.dumps(ems.execute("s.sh", {"hostname": "h", "private": "10.0.0.1"})).encode()
    return {"save": [save] * count, "execute": [execute] * count}


async def _round(url: str, fleet: FleetProcess, floor: FloorServer, exchange: str,
                 count: int) -> Figures:
    """One round: (side, kind) -> (wall µs, CPU µs) per round trip."""
    out: Figures = {}
    ours = RpcClient(url, exchange=exchange)
    theirs = RpcClient(url, exchange=floor.exchange)
    await ours.open()
    await theirs.open()
    try:
        queue = ems_actions_queue(fleet.hostnames[0])
        bodies = _gvnfm_bodies(count)
        await ours.call(queue, bodies["save"][0], timeout=30, correlation_id=uuid.uuid4().hex)   # warm-up
        for kind in KINDS:
            out[("gvnfm", kind)] = await _batch(ours, queue, bodies[kind], fleet.child.cpu)
            floor_bodies = [b"-" if kind == "save" else b"w"] * count
            out[("floor", kind)] = await _batch(theirs, floor.queue(0), floor_bodies, floor.child.cpu)
    finally:
        await ours.close()
        await theirs.close()
    return out


async def run(url: str, count: int, rounds: int, profile: Path | None = None) -> list[Figures]:
    tag = uuid.uuid4().hex[:8]
    exchange = f"bench-ems-{tag}-exchange"
    with tempfile.TemporaryDirectory(prefix="bench-ems-") as folder:
        workdir = Path(folder)
        fleet = FleetProcess(url=url, exchange=exchange, endpoint=f"bench-ems-{tag}", prefix=f"bems{tag}",
                             count=1, workdir=workdir, profile=profile)
        await fleet.start()
        try:
            async with FloorServer(url, 1, workdir, via_exchange=True) as floor:
                return [await _round(url, fleet, floor, exchange, count) for _ in range(rounds)]
        finally:
            try:
                await fleet.stop()
            finally:   # the exchange goes also when the fleet did not stop cleanly
                await _delete_exchange(url, exchange)


async def _delete_exchange(url: str, exchange: str) -> None:
    conn = await connect(url)
    try:
        channel = await conn.channel()
        await channel.exchange_delete(exchange)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ems_micro")
    p.add_argument("--broker", default=DEFAULT_BROKER)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", type=Path, help="write a cProfile of the agent's process here")
    args = p.parse_args(argv)
    results = asyncio.run(run(args.broker, max(1, args.count), max(1, args.rounds), args.profile))
    for kind in KINDS:
        for side in ("gvnfm", "floor"):
            walls = [r[(side, kind)][0] for r in results]
            cpus = [r[(side, kind)][1] for r in results]
            print(f"{kind:7} {side:5}  wall {statistics.median(walls):7.1f} µs ({min(walls):.0f}–{max(walls):.0f})"
                  f"  consumer CPU {statistics.median(cpus):7.1f} µs ({min(cpus):.0f}–{max(cpus):.0f})  per command")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
