"""A small cluster for durability tests: a test NFVO on a real broker, EMS agents that outlive the
workers (as VMs do), and N `gvnfm vnfm` worker processes sharing one store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gvnfm.ems.agent import EmsAgent
from gvnfm.store.sql import SqlStore
from gvnfm.transport import Delivery
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.service import operation_key
from tests.support.fakes import FakeNfvo
from tests.support.hosts import ems_config_from_userdata
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

APPEND = b"""#!/bin/bash
echo "$hostname $(basename "$0")" >> "$outdir/runs.log"
sleep 0.15
"""
SCRIPTS = ["s1.sh", "s2.sh", "s3.sh"]


def instantiate(name: str, outdir: Path, n: int = 3, scripts: dict[str, bytes] | None = None) -> dict[str, Any]:
    vnfd = {"id": unique("vnfd"), "name": name, "type": "t", "endpoint": "generic",
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": SCRIPTS}],
            "configurations": {"configurationParameters": [{"confKey": "outdir", "value": str(outdir)}]},
            "vdu": [{"id": unique("vdud"), "vm_image": ["x"], "scale_in_out": n,
                     "vnfc": [{"id": unique("c"), "connection_point": [{"virtual_link_reference": "private"}]}
                              for _ in range(n)]}]}
    return {"action": "INSTANTIATE", "vnfd": vnfd, "vnfdf": {"flavour_key": "m1.small"}, "vnfInstanceName": name,
            "vlrs": [], "extension": {"nsr-id": "nsr-crash", "brokerIp": "127.0.0.1", "brokerPort": "5672"},
            "vimInstances": {}, "keys": [],
            "vnfPackage": {"scripts": [{"name": s, "payload": list((scripts or {}).get(s, APPEND))} for s in SCRIPTS]}}


class Cluster:
    """A test NFVO, in-process EMS agents (they outlive the workers, as VMs do), N VNFM workers."""

    def __init__(self, url: str, db: str, tmp: Path, workers: int = 2,
                 nfvo_factory: Callable[..., FakeNfvo] = FakeNfvo, host_users: bool = True) -> None:
        self.url, self.db, self.tmp, self.n = url, db, tmp, workers
        self.host_users = host_users
        self.nfvo_factory = nfvo_factory
        self.endpoint = unique("crash")
        self.agents: list[EmsAgent] = []
        self.workers: list[VnfmProcess] = []
        self.replies: Counter[str] = Counter()
        self.reply_bodies: dict[str, dict[str, Any]] = {}
        self.reply_queue = unique("nfvo-replies")
        self.op_ids: dict[str, str] = {}      # correlation id -> operation id of what send() sent

    async def add_host(self, hostname: str, userdata: str) -> None:
        agent = EmsAgent(ems_config_from_userdata(userdata, hostname, self.url,
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
        self.nfvo = self.nfvo_factory(self.t, host_factory=self.add_host)
        await self.nfvo.start()
        await self.t.declare_queue(self.reply_queue, durable=True, bind=False)
        await self.t.consume(self.reply_queue, self.on_reply)
        self.store = await SqlStore.open(self.db)
        for _ in range(self.n):
            await self.add_worker()

    async def add_worker(self) -> VnfmProcess:
        w = VnfmProcess(broker=self.url, endpoint=self.endpoint, state_dir=self.tmp / "vnfm", db=self.db,
                        extra=["--ems-start-timeout", "30"],
                        # messages kept while no worker consumes (vnfm.rabbitmq.autodelete=false): the crash
                        # tests take every worker down at times
                        env={"GVNFM_LEASE_SECONDS": "2", "GVNFM_ENDPOINT_QUEUE_AUTO_DELETE": "false",
                             "GVNFM_EMS_HOST_USERS": "true" if self.host_users else "false"})
        await w.start()
        await w.wait_for_log("event=vnfm_started")
        self.workers.append(w)
        return w

    async def send(self, msg: dict[str, Any]) -> str:
        cid = uuid.uuid4().hex
        body = json.dumps(msg).encode()
        self.op_ids[cid] = operation_key(cid, body)
        await self.t.publish(self.endpoint, body, reply_to=self.reply_queue, correlation_id=cid)
        return cid

    async def wait_reply(self, cid: str, timeout: float = 90) -> dict[str, Any]:
        for _ in range(int(timeout * 20)):
            if self.replies[cid]:
                return self.reply_bodies[cid]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no reply for {cid}\n" + "\n".join(w.log()[-3000:] for w in self.workers))

    async def kill(self, pid: int) -> None:
        """SIGKILL the worker ``pid`` and start another in its place."""
        [worker] = [w for w in self.workers if w.proc is not None and w.proc.pid == pid]
        await worker.kill()
        self.workers.remove(worker)
        await self.add_worker()

    async def quiesce(self, timeout: float = 60) -> None:
        """The barrier before asserting that nothing more is answered: every worker shuts down cleanly
        (no worker is left to answer anything), then a marker sent to the reply queue comes back after
        every reply already published there."""
        for w in self.workers:
            await w.terminate(timeout=timeout)
        marker = f"marker-{uuid.uuid4().hex}"
        await self.t.publish(self.reply_queue, b"{}", correlation_id=marker, exchange="")
        for _ in range(int(timeout * 20)):
            if self.replies[marker]:
                del self.replies[marker]
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the marker did not come back through the reply queue")

    async def holder_pid(self, cid: str, timeout: float = 30) -> int:
        for _ in range(int(timeout * 20)):
            op = await self.store.get_operation(self.op_ids[cid])
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
