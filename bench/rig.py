"""One isolated set-up on the shared broker: an exchange and a VNFM endpoint of its own, the VNFM
process, EMS fleet processes and the bench's NFVO; removed again by ``close``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

from bench import messages
from bench.amqp import connect
from bench.fleet import FleetProcess
from bench.nfvo import BenchNfvo
from bench.procs import broker_cpu_seconds
from bench.vnfm import VnfmProcess
from gvnfm.catalogue.queues import ems_actions_queue, ems_register_queue


class BenchFailure(RuntimeError):
    """gvnfm did not complete an operation of the bench (the figure would be meaningless)."""


@dataclass
class OpResult:
    seconds: float
    action: str
    steps: dict[str, int] = field(default_factory=dict)     # EMS commands logged by the VNFM, by status
    nfvo_requests: list[str] = field(default_factory=list)
    since_allocated: float | None = None                      # seconds from the ALLOCATE answer to the reply
    cpu: dict[str, float] = field(default_factory=dict)       # CPU seconds used during the operation

    @property
    def steps_ok(self) -> int:
        return self.steps.get("0", 0)

    @property
    def steps_failed(self) -> int:
        return sum(v for k, v in self.steps.items() if k != "0")


class Rig:
    def __init__(self, url: str, workdir: Path, name: str, *, ems_start_timeout: float = 300.0,
                 log_level: str = "INFO", gvnfm_url: str | None = None, db: str | None = None) -> None:
        self.url = url
        #: the broker URL of the VNFM and the EMS fleets (``stomp://`` for the STOMP rows); the bench's
        #: NFVO, the floor and the clean-up stay on ``url`` (AMQP)
        self.gvnfm_url = gvnfm_url or url
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.exchange = f"bench-{tag}-exchange"
        self.endpoint = f"bench-{tag}-vnfm"
        self.host_prefix = f"b{tag}"
        self.vnfm_db = db or f"sqlite+aiosqlite:///{self.dir / 'vnfm.db'}"   # shared by the VNFMs of the rig
        self.ems_start_timeout = ems_start_timeout
        self.log_level = log_level
        self.vnfm: VnfmProcess | None = None
        self.workers: list[VnfmProcess] = []   # more VNFM processes on the same endpoint and store
        self.nfvo: BenchNfvo | None = None
        self.fleets: list[FleetProcess] = []
        self.agent_hostnames: list[str] = []   # every agent ever started: their queues go at ``close``
        self._fleets_started = 0
        self._ops = 0

    # -- processes --------------------------------------------------------------------------------
    async def start_vnfm(self, concurrency: int, *, tag: str = "vnfm", profile: Path | None = None) -> VnfmProcess:
        if self.vnfm is not None:
            await self.stop_vnfm()
        if self.nfvo is None and self.gvnfm_url != self.url:
            await self._declare_exchange()      # STOMP cannot declare it: the NFVO's part, over AMQP
        self.vnfm = VnfmProcess(url=self.gvnfm_url, exchange=self.exchange, endpoint=self.endpoint, workdir=self.dir,
                                db=self.vnfm_db, concurrency=concurrency, ems_start_timeout=self.ems_start_timeout,
                                log_level=self.log_level, profile=profile, tag=tag, probe_url=self.url)
        await self.vnfm.start()
        if self.nfvo is None:
            self.nfvo = BenchNfvo(self.url, self.exchange)
            await self.nfvo.__aenter__()
        return self.vnfm

    async def start_worker(self, concurrency: int, *, tag: str) -> VnfmProcess:
        """One more VNFM process on the rig's endpoint and store (start it after ``start_vnfm``, which
        migrated the store)."""
        worker = VnfmProcess(url=self.url, exchange=self.exchange, endpoint=self.endpoint, workdir=self.dir,
                             db=self.vnfm_db, concurrency=concurrency, ems_start_timeout=self.ems_start_timeout,
                             log_level=self.log_level, tag=tag)
        self.workers.append(worker)
        await worker.start()
        return worker

    async def stop_vnfm(self) -> None:
        if self.vnfm is not None:
            await self.vnfm.stop()
            self.vnfm = None

    async def start_fleet(self, count: int, *, hold: bool = False, profile: Path | None = None,
                          tag: str = "fleet", wait_registered: bool = True) -> FleetProcess:
        """An EMS fleet of ``count`` agents with hostnames nobody else uses. Unless ``hold``, returns
        once the VNFM has recorded every registration (so no later figure includes them)."""
        assert self.vnfm is not None, "start the VNFM first: it declares the register queue"
        index = self._fleets_started
        self._fleets_started += 1
        fleet = FleetProcess(url=self.gvnfm_url, exchange=self.exchange, endpoint=self.endpoint,
                             prefix=f"{self.host_prefix}f{index}", count=count, workdir=self.dir, hold=hold,
                             profile=profile, log_level=self.log_level, tag=f"{tag}-{index}")
        self.fleets.append(fleet)
        self.agent_hostnames.extend(fleet.hostnames)
        await fleet.start()
        if not hold and wait_registered:
            await self.wait_registered(fleet.hostnames, timeout=60 + count / 10)
        return fleet

    async def wait_registered(self, hostnames: list[str], *, timeout: float) -> None:
        """Until the VNFM's store holds a registration of every hostname (read through gvnfm's Store)."""
        from gvnfm.store.sql import SqlStore

        store = await SqlStore.open(self.vnfm_db)
        try:
            deadline = time.monotonic() + timeout
            while True:
                missing = set(hostnames) - await store.registered_hostnames(list(hostnames))
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise BenchFailure(f"{len(missing)} of {len(hostnames)} EMS agents never reached the VNFM")
                await asyncio.sleep(0.1)
        finally:
            await store.close()

    async def stop_fleet(self, fleet: FleetProcess) -> None:
        await fleet.stop()
        with contextlib.suppress(ValueError):
            self.fleets.remove(fleet)

    # -- operations -------------------------------------------------------------------------------
    async def instantiate(self, hostnames: list[str], scripts: list[str], *, timeout: float,
                          expect_steps: int | None = None, payload: bytes = messages.EMPTY_SCRIPT) -> OpResult:
        """INSTANTIATE a VNF over ``hostnames`` with ``scripts``; raises BenchFailure unless gvnfm
        answered INSTANTIATE (and, with ``expect_steps``, logged that many successful commands)."""
        assert self.vnfm is not None and self.nfvo is not None, "start the VNFM first"
        self._ops += 1
        name = f"{self.host_prefix}-vnf{self._ops}"
        message = messages.instantiate(name, len(hostnames), scripts, payload=payload)
        offset = self.vnfm.log_offset()
        self.nfvo.requests.clear()
        cpu0 = self._cpu()
        answer, seconds = await self.nfvo.instantiate(self.endpoint, message, hostnames, timeout=timeout)
        cpu1 = self._cpu()
        action = str(answer.get("action"))
        result = OpResult(seconds, action, nfvo_requests=list(self.nfvo.requests),
                          cpu={k: round(cpu1[k] - cpu0[k], 3) for k in cpu0})
        if self.nfvo.allocated_at is not None and self.nfvo.answered_at is not None:
            result.since_allocated = self.nfvo.answered_at - self.nfvo.allocated_at
        if action != "INSTANTIATE":
            detail = (answer.get("exception") or {}).get("detailMessage") or answer.get("message") or answer
            raise BenchFailure(f"gvnfm answered {action} to INSTANTIATE of {len(hostnames)} VNFCs: {detail!s:.500}")
        result.steps = await self._steps_since(offset, expect_steps)
        if expect_steps is not None and (result.steps_ok != expect_steps or result.steps_failed):
            raise BenchFailure(f"expected {expect_steps} successful EMS commands, the VNFM logged {result.steps}")
        return result

    def _cpu(self) -> dict[str, float]:
        assert self.vnfm is not None
        vnfm = self.vnfm.child.cpu_parts()
        ems = [f.child.cpu_parts() for f in self.fleets]
        return {"vnfm": self.vnfm.child.cpu(), "vnfm_main": vnfm["main"], "vnfm_threads": vnfm["threads"],
                "ems": sum(f.child.cpu() for f in self.fleets), "ems_main": sum(e["main"] for e in ems),
                "ems_threads": sum(e["threads"] for e in ems), "ems_scripts": sum(e["children"] for e in ems),
                "nfvo": time.process_time(), "broker": broker_cpu_seconds()}

    async def _steps_since(self, offset: int, expect: int | None) -> dict[str, int]:
        # the reply may overtake the log line's flush to disk by a moment
        assert self.vnfm is not None
        steps = self.vnfm.steps_logged(offset)
        deadline = time.monotonic() + 5
        while expect is not None and sum(steps.values()) < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            steps = self.vnfm.steps_logged(offset)
        return steps

    async def warm_up(self, hostname: str, timeout: float = 120.0) -> OpResult:
        """One small INSTANTIATE, so imports, connections and the store are warm before measuring."""
        return await self.instantiate([hostname], messages.script_names(1), timeout=timeout, expect_steps=2)

    # -- teardown ---------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop every process and delete what the rig put on the broker, whatever failed before: a
        fleet that could not consume leaves its agents' ``vnfm.<hostname>.actions`` queues (auto-delete
        queues that never had a consumer stay), so they are deleted by name."""
        try:
            for fleet in list(self.fleets):
                with contextlib.suppress(Exception):
                    await self.stop_fleet(fleet)
            for worker in self.workers:
                with contextlib.suppress(Exception):
                    await worker.stop()
            with contextlib.suppress(Exception):
                await self.stop_vnfm()
            if self.nfvo is not None:
                with contextlib.suppress(Exception):
                    await self.nfvo.__aexit__(None, None, None)
                self.nfvo = None
        finally:
            await self._delete_broker_objects()

    async def _declare_exchange(self) -> None:
        conn = await connect(self.url)
        try:
            channel = await conn.channel()
            await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        finally:
            await conn.close()

    async def _delete_broker_objects(self) -> None:
        queues = [self.endpoint, ems_register_queue(self.endpoint),
                  *(ems_actions_queue(h) for h in self.agent_hostnames)]
        conn = await connect(self.url)
        try:
            channel = await conn.channel()
            for queue in queues:
                try:
                    await channel.queue_delete(queue)   # RabbitMQ: deleting a missing queue is not an error
                except Exception:
                    channel = await conn.channel()   # a channel error closed it: go on with a new one
            with contextlib.suppress(Exception):
                await channel.exchange_delete(self.exchange)
        finally:
            await conn.close()

    def describe(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "endpoint": self.endpoint, "dir": str(self.dir)}

