"""The physical floors: what the same traffic costs with nothing but aio-pika and a process spawn.

``RoundTrips`` describes traffic as gvnfm produces it: stages run one after the other, the round
trips of a stage in parallel under a concurrency bound; each round trip targets one consumer queue
and may spawn ``/bin/true`` on the consumer side. The floor's consumer is its own process
(``bench.floor_server``), as the EMS fleet is.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import RpcClient, connect
from bench.config import BenchConfig
from bench.procs import Child, broker_cpu_seconds, python_argv
from bench.timing import timed_window


@dataclass(frozen=True)
class RoundTrip:
    queue: int          # index of the consumer queue (one per VNFC, as one EMS per VNFC)
    spawn: bool         # the consumer runs /bin/true before answering (a script execution)


@dataclass
class RoundTrips:
    stages: list[list[RoundTrip]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.stages)

    @property
    def spawns(self) -> int:
        return sum(rt.spawn for s in self.stages for rt in s)

    @property
    def queues(self) -> int:
        return 1 + max((rt.queue for s in self.stages for rt in s), default=0)


@dataclass
class FloorResult:
    seconds: float
    round_trips: int
    spawns: int
    replies_ok: int
    concurrency: int
    cpu: dict[str, float] = field(default_factory=dict)   # CPU seconds: consumer process, client

    def as_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "round_trips": self.round_trips, "spawns": self.spawns,
                "replies_ok": self.replies_ok, "concurrency": self.concurrency, "cpu": self.cpu}


def fanout_round_trips(n: int, scripts: int, *, delivered_files: int, nfvo_round_trips: int = 3) -> RoundTrips:
    """The traffic of INSTANTIATE over ``n`` VNFCs with ``scripts`` scripts: the NFVO exchanges
    (INSTANTIATE, GRANT, ALLOCATE) one after the other, one stage delivering ``delivered_files``
    files to every VNFC, then one stage per script on every VNFC (script-major, as gvnfm)."""
    plan = RoundTrips([[RoundTrip(0, False)] for _ in range(nfvo_round_trips)])
    if delivered_files:
        plan.stages.append([RoundTrip(i, False) for i in range(n) for _ in range(delivered_files)])
    for _ in range(scripts):
        plan.stages.append([RoundTrip(i, True) for i in range(n)])
    return plan


class FloorServer:
    """The floor's consumer process with ``count`` queues; with ``via_exchange`` they are bound to a topic
    exchange of their own and the floor's requests go through it (as gvnfm's through ``openbaton-exchange``)."""

    def __init__(self, url: str, count: int, workdir: Path, *, channel_per_queue: bool = False,
                 via_exchange: bool = False) -> None:
        self.url = url
        self.count = count
        self.prefix = f"bench-floor-{uuid.uuid4().hex[:10]}"
        self.exchange = f"{self.prefix}-exchange" if via_exchange else None
        argv = ["-m", "bench.floor_server", "--url", url, "--prefix", self.prefix, "--count", str(count)]
        if channel_per_queue:
            argv.append("--channel-per-queue")
        if self.exchange:
            argv += ["--exchange", self.exchange]
        self.child = Child("floor-server", python_argv(*argv), log=workdir / "floor-server.log")
        self.stats: dict[str, int] = {}

    def queue(self, index: int) -> str:
        return f"{self.prefix}.{index}"

    async def __aenter__(self) -> FloorServer:
        await self.child.start(ready_line="READY", timeout=60 + self.count / 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.child.stop(grace=30 + self.count / 50)   # it deletes its queues before it exits
        for line in reversed(self.child.lines):
            if line.startswith("{"):
                self.stats = json.loads(line)
                break


def floor_server(cfg: BenchConfig, count: int, workdir: Path) -> FloorServer:
    """The floor's consumer process as the run's options want it."""
    return FloorServer(cfg.broker, count, workdir, channel_per_queue=cfg.floor_channel_per_queue,
                       via_exchange=cfg.floor_via_exchange)


async def run_round_trips(server: FloorServer, traffic: RoundTrips, *, concurrency: int,
                          timeout: float = 120.0, spawn: str = "true") -> FloorResult:
    """Drive ``traffic`` against ``server`` from a fresh raw client; returns the wall time. The
    consumer spawns ``/bin/true`` (``spawn="true"``), ``/bin/bash <empty file>`` (``"bash"``), that bash
    under the EMS's spool (``"spool"``: record, output files, status wrapper) or ``/bin/sleep S``
    (``"sleep:S"``)."""
    spawn_body = (f"s{float(spawn[6:])}".encode() if spawn.startswith("sleep:")
                  else {"true": b"x", "bash": b"b", "spool": b"w"}[spawn])
    bound = asyncio.Semaphore(max(1, concurrency))
    ok = 0

    async with RpcClient(server.url, exchange=server.exchange) as client:
        await client.call(server.queue(0), b"warm-up", timeout=timeout)   # connection and queue warm

        async def one(rt: RoundTrip) -> None:
            nonlocal ok
            async with bound:
                body = spawn_body if rt.spawn else b"-"
                answer = json.loads(await client.call(server.queue(rt.queue), body, timeout=timeout))
                if answer.get("status") == 0:
                    ok += 1

        with timed_window():
            server_cpu0, client_cpu0, broker_cpu0 = server.child.cpu(), time.process_time(), broker_cpu_seconds()
            t0 = time.perf_counter()
            for stage in traffic.stages:
                await asyncio.gather(*(one(rt) for rt in stage))
            seconds = time.perf_counter() - t0
        cpu = {"server": round(server.child.cpu() - server_cpu0, 3),
               "client": round(time.process_time() - client_cpu0, 3),
               "broker": round(broker_cpu_seconds() - broker_cpu0, 3)}
    return FloorResult(seconds, traffic.count, traffic.spawns, ok, concurrency, cpu)


async def storm_floor(url: str, n: int, *, timeout: float = 120.0) -> FloorResult:
    """N raw publishes of ``{"hostname": ...}`` to one queue at once, and a consumer on another
    connection acknowledging them; the time until the last is consumed."""
    queue_name = f"bench-storm-floor-{uuid.uuid4().hex[:10]}"
    got = 0
    done = asyncio.Event()
    consumer_conn = await connect(url)
    publisher_conn = await connect(url)
    try:
        cch = await consumer_conn.channel()
        await cch.set_qos(prefetch_count=64)
        queue = await cch.declare_queue(queue_name, auto_delete=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal got
            json.loads(message.body)
            await message.ack()
            got += 1
            if got >= n:
                done.set()

        await queue.consume(on_message)
        pch = await publisher_conn.channel()
        bodies = [json.dumps({"hostname": f"storm-{i:07d}"}).encode() for i in range(n)]
        with timed_window():
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            await asyncio.gather(*(pch.default_exchange.publish(aio_pika.Message(b), routing_key=queue_name)
                                   for b in bodies))
            await asyncio.wait_for(done.wait(), timeout)
            seconds = time.perf_counter() - t0
        cpu = {"client": round(time.process_time() - cpu0, 3)}
    finally:
        await publisher_conn.close()
        await consumer_conn.close()
    return FloorResult(seconds, n, 0, got, n, cpu)


def shifted(traffic: RoundTrips, offset: int) -> RoundTrips:
    """The same traffic on queues ``offset`` and up (one operation's VNFCs among many)."""
    return RoundTrips([[RoundTrip(rt.queue + offset, rt.spawn) for rt in stage] for stage in traffic.stages])


async def run_many_round_trips(server: FloorServer, traffics: list[RoundTrips], *, concurrency: int,
                               timeout: float = 120.0) -> FloorResult:
    """Several operations' traffic at once from one raw client: each runs its stages one after the
    other under its own bound (as each gvnfm operation has its own), all start together."""
    ok = 0
    async with RpcClient(server.url, exchange=server.exchange) as client:
        await client.call(server.queue(0), b"warm-up", timeout=timeout)

        async def operation(traffic: RoundTrips) -> None:
            nonlocal ok
            bound = asyncio.Semaphore(max(1, concurrency))

            async def one(rt: RoundTrip) -> None:
                nonlocal ok
                async with bound:
                    answer = json.loads(await client.call(server.queue(rt.queue), b"x" if rt.spawn else b"-",
                                                          timeout=timeout))
                    if answer.get("status") == 0:
                        ok += 1

            for stage in traffic.stages:
                await asyncio.gather(*(one(rt) for rt in stage))

        with timed_window():
            server_cpu0, client_cpu0, broker_cpu0 = server.child.cpu(), time.process_time(), broker_cpu_seconds()
            t0 = time.perf_counter()
            await asyncio.gather(*(operation(t) for t in traffics))
            seconds = time.perf_counter() - t0
        cpu = {"server": round(server.child.cpu() - server_cpu0, 3),
               "client": round(time.process_time() - client_cpu0, 3),
               "broker": round(broker_cpu_seconds() - broker_cpu0, 3)}
    count = sum(t.count for t in traffics)
    return FloorResult(seconds, count, sum(t.spawns for t in traffics), ok, concurrency, cpu)
