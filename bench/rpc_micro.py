"""The VNFM's side of one EMS command, alone: CPU and wall time per request/reply round trip of

- ``raw``: the floor's client (``bench.amqp.RpcClient``, plain aio-pika);
- ``rpc``: gvnfm's ``AmqpTransport.rpc`` (what the VNFM's EMS client sends through);
- ``ems``: the VNFM's ``EmsClient.send`` over it (correlation id, re-send on registration, reply parsing),

against one consumer process that answers at once (``--serve``: plain aio-pika, as the floor's), on a
queue named as an EMS's (``vnfm.<hostname>.actions``) bound to an exchange of its own. Each round runs
the three one after the other, ``--count`` round trips each, one at a time (c=1) and 32 at once; the
medians of ``--rounds`` rounds are printed, with the min–max. To compare two versions of gvnfm, run it
with ``PYTHONPATH=<their src>:<this folder>`` alternately (docs/performance.md, fourteenth round).

``--stub``: no broker, no consumer; the VNFM's own code alone, which the broker's noise hides: ``rpc`` is a
stand-in transport whose ``rpc`` answers after one turn of the event loop, ``ems`` the ``EmsClient`` over
it, CPU per command (``raw`` is not measured).

``python -m bench.rpc_micro [--count 2000] [--rounds 5] [--broker URL] [--stub]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import RpcClient, connect, reply
from bench.config import DEFAULT_BROKER
from gvnfm.catalogue.queues import ems_actions_queue
from gvnfm.transport import open_transport
from gvnfm.vnfm.ems_client import EmsClient

OK = json.dumps({"output": "", "err": "", "status": 0}).encode()
MODES = ("raw", "rpc", "ems")
BOUNDS = (1, 32)


async def serve(url: str, exchange: str, queue_name: str) -> None:
    """Answer every request at once, on the default exchange, until SIGTERM; then delete the exchange
    (durable, as gvnfm's transport declares ``openbaton-exchange``) and the queue."""
    conn = await connect(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=64)
    topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
    await queue.bind(topic, routing_key=queue_name)

    async def on_message(message: AbstractIncomingMessage) -> None:
        await reply(channel, message, OK)
        await message.ack()

    await queue.consume(on_message)
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for name in ("aio_pika", "aiormq"):   # not a line for the consumer the deletion cancels
        logging.getLogger(name).setLevel(logging.ERROR)
    await queue.delete(if_unused=False, if_empty=False)
    await topic.delete()
    await conn.close()


Call = Callable[[int], Awaitable[object]]


async def _caller(mode: str, url: str, exchange: str, hostname: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """The round trip of ``mode`` (see the module docstring) and how to close its connection."""
    queue = ems_actions_queue(hostname)
    if mode == "raw":
        client = RpcClient(url, exchange=exchange)
        await client.open()
        return (lambda i: client.call(queue, b"-", timeout=10)), client.close
    transport = open_transport(url, exchange=exchange)
    await transport.connect()
    if mode == "rpc":
        return (lambda i: transport.rpc(queue, b"-", timeout=10)), transport.close
    ems = EmsClient(transport, timeout=10)
    command = {"action": "EXECUTE", "payload": "s.sh"}
    return (lambda i: ems.send(hostname, command, correlation_id=f"op:{i}")), transport.close


async def _timed(call: Call, bound: int, count: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per round trip, ``count`` of them with at most ``bound`` at once."""
    gate = asyncio.Semaphore(bound)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    await asyncio.gather(*(one(-1 - i) for i in range(50)))    # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall / count * 1e6, cpu / count * 1e6


async def measure(url: str, exchange: str, hostname: str, count: int) -> dict[tuple[str, int], tuple[float, float]]:
    """(mode, bound) -> (wall µs, CPU µs) per round trip."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for mode in MODES:
        call, close = await _caller(mode, url, exchange, hostname)
        try:
            for bound in BOUNDS:
                out[(mode, bound)] = await _timed(call, bound, count)
        finally:
            await close()
    return out


class _StubTransport:
    """Answers every ``rpc`` after one turn of the event loop (``--stub``)."""

    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None, **_: object) -> bytes:
        await asyncio.sleep(0)
        return OK


async def measure_stub(count: int) -> dict[tuple[str, int], tuple[float, float]]:
    """``--stub``: (mode, bound) -> (wall µs, CPU µs) per command, without a broker."""
    stub = _StubTransport()
    ems = EmsClient(stub, timeout=10)  # type: ignore[arg-type]
    command = {"action": "EXECUTE", "payload": "s.sh"}
    calls: dict[str, Call] = {"rpc": lambda i: stub.rpc("q", b"-", timeout=10),
                              "ems": lambda i: ems.send("h", command, correlation_id=f"op:{i}")}
    return {(mode, bound): await _timed(call, bound, count) for mode, call in calls.items() for bound in BOUNDS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rpc_micro")
    p.add_argument("--broker", default=DEFAULT_BROKER)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stub", action="store_true", help="the VNFM's code alone, without a broker")
    p.add_argument("--serve", nargs=2, metavar=("EXCHANGE", "QUEUE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.broker, *args.serve))
        return 0
    if args.stub:
        _print([asyncio.run(measure_stub(max(1, args.count))) for _ in range(max(1, args.rounds))], ("rpc", "ems"))
        return 0
    tag = uuid.uuid4().hex[:8]
    exchange, hostname = f"bench-rpc-{tag}", f"bench-rpc-{tag}"
    server = subprocess.Popen([sys.executable, "-m", "bench.rpc_micro", "--broker", args.broker, "--serve",
                               exchange, ems_actions_queue(hostname)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "READY":
            print("the consumer did not start", file=sys.stderr)
            return 1
        rounds = [asyncio.run(measure(args.broker, exchange, hostname, max(1, args.count)))
                  for _ in range(max(1, args.rounds))]
    finally:
        server.terminate()
        server.wait()
    _print(rounds, MODES)
    return 0


def _print(rounds: list[dict[tuple[str, int], tuple[float, float]]], modes: tuple[str, ...]) -> None:
    for bound in BOUNDS:
        for mode in modes:
            walls = [r[(mode, bound)][0] for r in rounds]
            cpus = [r[(mode, bound)][1] for r in rounds]
            print(f"{mode:3} c={bound:<2}  CPU {statistics.median(cpus):6.1f} µs ({min(cpus):.0f}–{max(cpus):.0f})"
                  f"  wall {statistics.median(walls):6.1f} µs ({min(walls):.0f}–{max(walls):.0f})  per round trip")


if __name__ == "__main__":
    raise SystemExit(main())
