"""Operations survive crashes: a VNFM worker killed with SIGKILL at a random step of an INSTANTIATE
across 3 VNFCs, many times over (PostgreSQL and SQLite); a broker restarted in the middle of an
operation; several workers sharing the work. Every run ends with each script having run exactly once
per VNFC (the scripts append to a file) and exactly one reply."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gvnfm.ems.agent import EmsAgent
from gvnfm.ems.config import EmsConfig
from gvnfm.store.sql import SqlStore
from gvnfm.transport import Delivery
from gvnfm.transport.amqp import AmqpTransport
from tests.support.fakes import FakeNfvo
from tests.support.pg import create_pg_database, drop_pg_database
from tests.support.rabbit import PrivateRabbit
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq

ROUNDS = int(os.environ.get("GVNFM_CRASH_ROUNDS", "4"))
APPEND = b"""#!/bin/bash
echo "$hostname $(basename "$0")" >> "$outdir/runs.log"
sleep 0.15
"""
SCRIPTS = ["s1.sh", "s2.sh", "s3.sh"]


def instantiate(name: str, outdir: Path, n: int = 3) -> dict[str, Any]:
    vnfd = {"id": unique("vnfd"), "name": name, "type": "t", "endpoint": "generic",
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": SCRIPTS}],
            "configurations": {"configurationParameters": [{"confKey": "outdir", "value": str(outdir)}]},
            "vdu": [{"id": unique("vdud"), "vm_image": ["x"], "scale_in_out": n,
                     "vnfc": [{"id": unique("c"), "connection_point": [{"virtual_link_reference": "private"}]}
                              for _ in range(n)]}]}
    return {"action": "INSTANTIATE", "vnfd": vnfd, "vnfdf": {"flavour_key": "m1.small"}, "vnfInstanceName": name,
            "vlrs": [], "extension": {"nsr-id": "nsr-crash", "brokerIp": "127.0.0.1", "brokerPort": "5672"},
            "vimInstances": {}, "keys": [],
            "vnfPackage": {"scripts": [{"name": s, "payload": list(APPEND)} for s in SCRIPTS]}}


class Cluster:
    """A test NFVO, in-process EMS agents (they outlive the workers, as VMs do), N VNFM workers."""

    def __init__(self, url: str, db: str, tmp: Path, workers: int = 2) -> None:
        self.url, self.db, self.tmp, self.n = url, db, tmp, workers
        self.endpoint = unique("crash")
        self.agents: list[EmsAgent] = []
        self.workers: list[VnfmProcess] = []
        self.replies: Counter[str] = Counter()
        self.reply_bodies: dict[str, dict[str, Any]] = {}
        self.reply_queue = unique("nfvo-replies")

    async def add_host(self, hostname: str, userdata: str) -> None:
        agent = EmsAgent(EmsConfig(hostname=hostname, type=self.endpoint, broker_url=self.url,
                                   root=str(self.tmp / "hosts" / hostname), reconnect_max=2))
        await agent.start()
        self.agents.append(agent)

    async def on_reply(self, delivery: Delivery) -> None:
        cid = delivery.message.correlation_id or "?"
        self.replies[cid] += 1
        self.reply_bodies[cid] = json.loads(delivery.message.body)
        await delivery.ack()

    async def start(self) -> None:
        self.t = AmqpTransport(self.url, reconnect_max=1)
        await self.t.connect()
        self.nfvo = FakeNfvo(self.t, host_factory=self.add_host)
        await self.nfvo.start()
        await self.t.declare_queue(self.reply_queue, durable=True, bind=False)
        await self.t.consume(self.reply_queue, self.on_reply)
        self.store = await SqlStore.open(self.db)
        for _ in range(self.n):
            await self.add_worker()

    async def add_worker(self) -> VnfmProcess:
        w = VnfmProcess(broker=self.url, endpoint=self.endpoint, state_dir=self.tmp / "vnfm", db=self.db,
                        extra=["--ems-start-timeout", "30"], env={"GVNFM_LEASE_SECONDS": "2"})
        await w.start()
        await w.wait_for_log("event=vnfm_started")
        self.workers.append(w)
        return w

    async def send(self, msg: dict[str, Any]) -> str:
        cid = uuid.uuid4().hex
        await self.t.publish(self.endpoint, json.dumps(msg).encode(), reply_to=self.reply_queue, correlation_id=cid)
        return cid

    async def wait_reply(self, cid: str, timeout: float = 90) -> dict[str, Any]:
        for _ in range(int(timeout * 20)):
            if self.replies[cid]:
                return self.reply_bodies[cid]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no reply for {cid}\n" + "\n".join(w.log()[-3000:] for w in self.workers))

    async def holder_pid(self, cid: str, timeout: float = 30) -> int:
        for _ in range(int(timeout * 20)):
            op = await self.store.get_operation(cid)
            if op is not None and op.worker:
                return int(op.worker.split(":")[1])
            await asyncio.sleep(0.05)
        raise AssertionError("the operation was never claimed")

    async def close(self) -> None:
        for w in self.workers:
            await w.kill()
        for a in self.agents:
            await a.stop()
        await self.t.close()
        await self.store.close()


def runs(outdir: Path) -> list[tuple[str, str]]:
    path = outdir / "runs.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]  # type: ignore[misc]


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    url = create_pg_database(pg_url)
    try:
        yield url
    finally:
        drop_pg_database(pg_url, url)


@pytest.fixture
async def cluster(amqp_vhost: str, db_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(amqp_vhost, db_url, tmp_path)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_sigkill_at_a_random_step_runs_every_script_once_and_replies_once(
        cluster: Cluster, tmp_path: Path, db_url: str) -> None:
    rng = random.Random(os.environ.get("GVNFM_CRASH_SEED", "7"))
    rounds = ROUNDS if db_url.startswith("postgresql") else max(1, ROUNDS // 2)
    for round_no in range(rounds):
        outdir = tmp_path / f"round{round_no}"
        outdir.mkdir()
        kill_after = rng.randrange(0, 9)     # script lines seen before the kill
        cid = await cluster.send(instantiate(f"vnf{round_no}", outdir))
        pid = await cluster.holder_pid(cid)
        while len(runs(outdir)) < kill_after and not cluster.replies[cid]:
            await asyncio.sleep(0.01)
        if not cluster.replies[cid]:
            os.kill(pid, signal.SIGKILL)
            for w in cluster.workers:
                if w.proc is not None and w.proc.pid == pid:
                    await w.proc.wait()
            cluster.workers = [w for w in cluster.workers if w.proc is None or w.proc.returncode is None]
            await cluster.add_worker()
        reply = await cluster.wait_reply(cid)
        assert reply["action"] == "INSTANTIATE", reply
        await asyncio.sleep(0.5)
        assert cluster.replies[cid] == 1
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        seen = Counter(runs(outdir))
        assert seen == Counter({(h, s): 1 for h in hosts for s in SCRIPTS}), (round_no, kill_after, seen)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    url = create_pg_database(pg_url)
    try:
        yield url
    finally:
        drop_pg_database(pg_url, url)


async def test_three_workers_deploy_30_vnfrs_at_once_none_twice(amqp_vhost: str, pg_db: str, tmp_path: Path) -> None:
    db = pg_db
    c = Cluster(amqp_vhost, db, tmp_path, workers=3)
    try:
        await c.start()
        outdir = tmp_path / "out"
        outdir.mkdir()
        cids = [await c.send(instantiate(f"many{i}", outdir, n=1)) for i in range(30)]
        replies = [await c.wait_reply(cid, timeout=180) for cid in cids]
        assert all(r["action"] == "INSTANTIATE" for r in replies)
        await asyncio.sleep(0.5)
        assert all(c.replies[cid] == 1 for cid in cids)
        seen = Counter(runs(outdir))
        assert len(seen) == 30 * 3 and set(seen.values()) == {1}
        workers = {(await c.store.get_operation(cid)).worker for cid in cids}  # type: ignore[union-attr]
        assert len(workers) >= 2, workers   # the work was shared
    finally:
        await c.close()


async def test_broker_restart_in_the_middle_of_an_operation(private_rabbit: PrivateRabbit, tmp_path: Path) -> None:
    c = Cluster(private_rabbit.url, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", tmp_path, workers=1)
    try:
        await c.start()
        outdir = tmp_path / "out"
        outdir.mkdir()
        cid = await c.send(instantiate("restart", outdir))
        while len(runs(outdir)) < 4:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(private_rabbit.restart)
        reply = await c.wait_reply(cid, timeout=120)
        assert reply["action"] == "INSTANTIATE", reply
        await asyncio.sleep(0.5)
        assert c.replies[cid] == 1
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        assert Counter(runs(outdir)) == Counter({(h, s): 1 for h in hosts for s in SCRIPTS})
    finally:
        await c.close()
