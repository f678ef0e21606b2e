"""Several `gvnfm vnfm` workers of one endpoint on PostgreSQL and RabbitMQ: the NFVO's unregister
deletes the endpoint, its credentials and its broker user, so only the last worker to stop sends it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gvnfm.ems.agent import EmsAgent
from gvnfm.transport.amqp import AmqpTransport
from tests.support.fakes import FakeNfvo
from tests.support.hosts import ems_config_from_userdata
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq


def instantiate(endpoint: str) -> dict[str, Any]:
    vnfd = {"id": unique("vnfd"), "name": "web", "type": "web", "endpoint": endpoint, "version": "1",
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}],
            "virtual_link": [{"name": "private"}],
            "vdu": [{"id": unique("vdud"), "vm_image": ["ubuntu"], "scale_in_out": 1,
                     "vnfc": [{"id": unique("c"), "connection_point": [{"virtual_link_reference": "private"}]}]}],
            "deployment_flavour": [{"flavour_key": "m1.small"}]}
    return {"action": "INSTANTIATE", "vnfd": vnfd, "vnfdf": {"flavour_key": "m1.small"}, "vnfInstanceName": "web",
            "vlrs": [{"id": "net-1", "name": "private"}],
            "extension": {"nsr-id": "nsr-w", "brokerIp": "127.0.0.1", "brokerPort": "5672"},
            "vimInstances": {}, "keys": [],
            "vnfPackage": {"scripts": [{"name": "install.sh", "payload": list(b"echo hi")}]}}


async def test_only_the_last_worker_unregisters(amqp_vhost: str, pg_db: str, tmp_path: Path) -> None:
    endpoint = unique("gvnfm-workers")
    nfvo_t = AmqpTransport(amqp_vhost)
    await nfvo_t.connect()
    agents: list[EmsAgent] = []

    async def host(hostname: str, userdata: str) -> None:
        # a real EMS configured as the VM's user-data configures it: the VNFM accepts the registration
        # (and the replies) of a host only from the broker user it made for that host
        agent = EmsAgent(ems_config_from_userdata(userdata, hostname, amqp_vhost,
                                                  root=str(tmp_path / "hosts" / hostname), script_timeout=30))
        await agent.start()
        agents.append(agent)

    nfvo = FakeNfvo(nfvo_t, host_factory=host)
    await nfvo.start()
    workers = [VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / f"w{i}", db=pg_db,
                           extra=["--ems-start-timeout", "30"]) for i in (1, 2)]
    try:
        for w in workers:
            await w.start()
        for w in workers:
            await w.wait_for_log("event=vnfm_started", timeout=60)
        assert [m["action"] for m in nfvo.registered] == ["register", "register"]

        # the first worker stops while the other runs: it says nothing to the NFVO
        assert await workers[0].terminate() == 0, workers[0].log()
        assert "event=nfvo_unregister_skipped" in workers[0].log() and "live_workers=1" in workers[0].log()
        assert [m["action"] for m in nfvo.registered] == ["register", "register"]

        # the other still answers the NFVO (EMS registrations go to the endpoint's shared queue)
        reply = json.loads(await nfvo_t.rpc(endpoint, json.dumps(instantiate(endpoint)).encode(), timeout=120))
        assert reply["action"] == "INSTANTIATE", (reply, workers[1].log()[-3000:])
        assert "action=INSTANTIATE" in workers[1].log()

        # the last one unregisters (fire-and-forget: wait for the NFVO to see it)
        assert await workers[1].terminate() == 0, workers[1].log()
        for _ in range(600):
            if nfvo.registered[-1]["action"] == "unregister":
                break
            await asyncio.sleep(0.05)
        assert [m["action"] for m in nfvo.registered] == ["register", "register", "unregister"]
        assert nfvo.registered[-1]["vnfmManagerEndpoint"]["endpoint"] == endpoint
    finally:
        for w in workers:
            await w.kill()
        for agent in agents:
            await agent.stop()
        await nfvo_t.close()


async def test_a_crashed_worker_does_not_keep_the_last_one_from_unregistering(
        amqp_vhost: str, pg_db: str, tmp_path: Path) -> None:
    endpoint = unique("gvnfm-workers")
    nfvo_t = AmqpTransport(amqp_vhost)
    await nfvo_t.connect()
    nfvo = FakeNfvo(nfvo_t)
    await nfvo.start()
    workers = [VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / f"w{i}", db=pg_db,
                           env={"GVNFM_LEASE_SECONDS": "2"}) for i in (1, 2)]
    try:
        for w in workers:
            await w.start()
        for w in workers:
            await w.wait_for_log("event=vnfm_started", timeout=60)
        await workers[0].kill()                   # crashed: its row stays until its lease (2 s) runs out
        await asyncio.sleep(2.5)                  # let that lease expire (a wall-clock fact, not a bound)
        assert await workers[1].terminate() == 0, workers[1].log()
        for _ in range(600):
            if nfvo.registered[-1]["action"] == "unregister":
                break
            await asyncio.sleep(0.05)
        assert [m["action"] for m in nfvo.registered] == ["register", "register", "unregister"], workers[1].log()
    finally:
        for w in workers:
            await w.kill()
        await nfvo_t.close()
