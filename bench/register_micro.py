"""The registration micro-benchmark of docs/performance.md (ninth round): the ``count`` agents of a held
EMS fleet (``bench.fleet_proc --hold``, as in the storm case) publish their registrations at the go; the
fleet prints the time from the go until the last is confirmed. The floor: a raw aio-pika client
publishing the same bodies to the same queue, mandatory and with publisher confirms, on a channel
already open. No VNFM runs: a consumer of this module's own acknowledges the registrations. Rounds
alternate; the median and min–max of each side are printed.

``python -m bench.register_micro [--count 10] [--rounds 15] [--broker URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import connect
from bench.config import DEFAULT_BROKER
from bench.fleet import FleetProcess
from gvnfm.catalogue.ems import registration_body
from gvnfm.ems.config import EmsConfig

ENDPOINT = "register-micro"


async def _floor(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> float:
    bodies = [registration_body(f"floor-{i}") for i in range(count)]
    started = time.perf_counter()
    await asyncio.gather(*(channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue,
                                                            mandatory=True) for body in bodies))
    return time.perf_counter() - started


async def run(broker: str, count: int, rounds: int) -> tuple[dict[str, list[float]], int]:
    """Each side's seconds per round, and how many registrations the queue received (both sides)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-register-"))
    register_queue = EmsConfig(broker_url=broker, type=ENDPOINT, hostname="x", root=str(workdir)).register_queue
    conn = await connect(broker)
    times: dict[str, list[float]] = {"fleet": [], "floor": []}
    received = 0
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue(register_queue, auto_delete=True)

        async def acknowledge(message: AbstractIncomingMessage) -> None:
            nonlocal received
            received += 1
            await message.ack()

        await queue.consume(acknowledge)
        publisher = await conn.channel()
        for i in range(rounds):
            fleet = FleetProcess(url=broker, exchange="openbaton-exchange", endpoint=ENDPOINT,
                                 prefix=f"rm{uuid.uuid4().hex[:6]}", count=count, workdir=workdir, hold=True,
                                 tag=f"round-{i}")
            await fleet.start()
            try:
                await asyncio.sleep(0.2)   # the fleet's start has settled
                fleet.go()
                times["fleet"].append((await fleet.registered())["publish_seconds"])
            finally:
                await fleet.stop()
            times["floor"].append(await _floor(publisher, register_queue, count))
        async with asyncio.timeout(30):
            while received < 2 * count * rounds:
                await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return times, received


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.register_micro", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10, help="agents in the fleet (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=15, help="alternating rounds (default: %(default)s)")
    p.add_argument("--broker", default=DEFAULT_BROKER, help="AMQP URL (default: %(default)s)")
    args = p.parse_args(argv)
    times, _ = asyncio.run(run(args.broker, args.count, args.rounds))
    for side, seconds in times.items():
        ms = [s * 1000 for s in seconds]
        print(f"{side:5}: {args.count} registrations in {statistics.median(ms):.2f} ms "
              f"(median; {min(ms):.2f}–{max(ms):.2f}, {len(ms)} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
