"""The NFVO's answer to GRANT_OPERATION, ALLOCATE_RESOURCES and SCALING survives the worker that asked:
two `gvnfm vnfm` worker processes on PostgreSQL and RabbitMQ, the asking worker killed with SIGKILL
while the NFVO is answering. The worker that takes the operation over collects that answer instead of
asking again: the NFVO is asked once, one set of hosts exists, every script runs once, one reply."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gvnfm.transport import Delivery
from tests.support.broker_admin import broker_admin
from tests.support.cluster import SCRIPTS, Cluster, instantiate, runs
from tests.support.fakes import FakeNfvo

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.faults]


@dataclass
class HoldingNfvo(FakeNfvo):
    """A FakeNfvo that, for the action in ``hold``, tells ``held`` and answers only once ``release``."""

    hold: str | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _on_request(self, delivery: Delivery) -> None:
        if json.loads(delivery.message.body).get("action") == self.hold:
            self.hold = None
            self.held.set()
            await self.release.wait()
        await super()._on_request(delivery)

    def asked(self, action: str) -> int:
        return sum(r["action"] == action for r in self.requests)


@pytest.fixture
async def cluster(amqp_vhost: str, pg_db: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    # a broker user per user-data (the default): the worker that takes over must use the user the dead
    # worker sent to the NFVO, as the hosts' EMSs hold that one
    c = Cluster(amqp_vhost, pg_db, tmp_path, workers=2, nfvo_factory=HoldingNfvo)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


def hosts_of(vnfr: dict[str, Any]) -> list[str]:
    return [i["hostname"] for vdu in vnfr["vdu"] for i in vdu.get("vnfc_instance") or []]


@pytest.mark.parametrize("point", ["GRANT_OPERATION", "ALLOCATE_RESOURCES", "SCALING"])
async def test_sigkill_while_the_nfvo_answers_asks_once(cluster: Cluster, tmp_path: Path, point: str) -> None:
    nfvo: HoldingNfvo = cluster.nfvo  # type: ignore[assignment]
    outdir = tmp_path / "out"
    outdir.mkdir()
    msg = instantiate("vnf", outdir, n=2)
    if point == "SCALING":
        first = await cluster.wait_reply(await cluster.send(msg))
        assert first["action"] == "INSTANTIATE", first
        vnfr = first["virtualNetworkFunctionRecord"]
        msg = {"action": "SCALE_OUT", "component": vnfr["vdu"][0]["vnfc"][0], "virtualNetworkFunctionRecord": vnfr,
               "vnfPackage": msg["vnfPackage"], "extension": msg["extension"]}
    before = {a: nfvo.asked(a) for a in ("GRANT_OPERATION", "ALLOCATE_RESOURCES", "SCALING")}
    hosts_before = len(cluster.agents)

    nfvo.hold = point
    cid = await cluster.send(msg)
    await asyncio.wait_for(nfvo.held.wait(), 120)           # hang guard only
    asker = await cluster.holder_pid(cid)
    await cluster.kill(asker)                               # SIGKILL while the NFVO is answering
    nfvo.release.set()

    reply = await cluster.wait_reply(cid, timeout=180)
    assert reply["action"] == ("SCALED" if point == "SCALING" else "INSTANTIATE"), reply
    asked = {a: nfvo.asked(a) - n for a, n in before.items()}
    expected = {"GRANT_OPERATION": 0, "ALLOCATE_RESOURCES": 0, "SCALING": 1} if point == "SCALING" else \
        {"GRANT_OPERATION": 1, "ALLOCATE_RESOURCES": 1, "SCALING": 0}
    assert asked == expected, asked                         # the NFVO was asked once, not again
    assert len(cluster.agents) - hosts_before == (1 if point == "SCALING" else 2)   # one set of hosts
    for _ in range(1200):      # hang guard only: the reply is marked sent right after it is sent
        op = await cluster.store.get_operation(cluster.op_ids[cid])
        if op is not None and op.replied:
            break
        await asyncio.sleep(0.05)
    assert op is not None and op.replied and op.worker and f":{asker}:" not in op.worker   # taken over
    taker = [w for w in cluster.workers if op.worker and f":{w.proc.pid}:" in op.worker]  # type: ignore[union-attr]
    # it took the answer the dead worker asked for (stored by whichever worker consumed it)
    assert taker and ("event=nfvo_answer_collected" in taker[0].log() or "event=nfvo_answer_awaited" in taker[0].log())
    hosts = hosts_of(reply["virtualNetworkFunctionRecord"])
    new = hosts[-1:] if point == "SCALING" else hosts
    seen = Counter((h, s) for h, s in runs(outdir) if h in new)
    assert seen == Counter({(h, s): 1 for h in new for s in SCRIPTS}), seen
    await cluster.workers[-1].wait_for_log("event=vnfm_started")
    assert cluster.replies[cid] == 1
    # one broker user per user-data, the one the operation named before asking: no second one for the
    # hosts by the worker that took over (an INSTANTIATE's, and a SCALING's when the kill was there)
    vhost = urlsplit(cluster.url).path.lstrip("/")
    host_users = sorted(u for u in broker_admin().vhost_users(vhost) if u.startswith("gvnfm-ems-"))
    assert op.context.ems_user in host_users, (op.context, host_users)
    assert len(host_users) == (2 if point == "SCALING" else 1), host_users
