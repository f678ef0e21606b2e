"""A fleet's agents share one consumer channel per connection (``gvnfm ems --hosts N``). When the broker
closes it (here RabbitMQ's ``consumer_timeout``, 1 s on a private node, for scripts that outlive it; a
channel error of any one agent does the same), every agent's auto-delete queue goes with it, and the
commands still queued in them. The agents' consumers come back with their queues, every agent registers
again, and the VNFM's side (gvnfm's EmsClient) sends again what was not answered: every command is
answered, every script runs once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gvnfm.ems.agent import EmsFleet
from gvnfm.ems.config import EmsConfig
from tests.support.ems_peers import EmsClientVnfm
from tests.support.rabbit import PrivateRabbit
from tests.support.services import unique

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]


def _write_scripts(fleet: EmsFleet, runs: Path) -> Path:
    """Per agent: its own script (sleeping longer than the consumer timeout, or not) and ``next.sh``; each
    run leaves a line in ``runs/<host>.<script>``."""
    runs.mkdir()
    for agent, (name, seconds) in zip(fleet.agents, [("long", 2.5), ("mid", 2.0), ("quick", 0)], strict=True):
        scripts = Path(str(agent.config.scripts_path))
        scripts.mkdir(parents=True, exist_ok=True)
        for script, wait in ((name, seconds), ("next", 0)):
            path = scripts / f"{script}.sh"
            path.write_text(f'#!/bin/bash\necho ran >> "{runs}/{agent.hostname}.{script}"\n'
                            f'sleep {wait}\necho "{script} on {agent.hostname}"\n')
            path.chmod(0o755)
    return runs


async def test_a_lost_shared_consumer_channel_loses_no_command(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    node = PrivateRabbit(config="consumer_timeout = 1000",
                         advanced="[{rabbit, [{channel_tick_interval, 500}]}].\n")
    await asyncio.to_thread(node.start)
    endpoint = unique("fleetloss")
    vnfm = EmsClientVnfm(node.url, endpoint, timeout=60)
    # prefetch 1: a second command to a busy agent waits in its queue, where the lost channel takes it
    fleet = EmsFleet(EmsConfig(hostname="fl", type=endpoint, broker_url=node.url, root=str(tmp_path / "root"),
                               prefetch=1), 3)
    try:
        await vnfm.start()
        await fleet.start()
        assert len({id(a.transport) for a in fleet.agents}) == 1
        async with asyncio.timeout(60):                       # hang guard
            while len(vnfm.registrations) < 3:
                await asyncio.sleep(0.05)
        runs = _write_scripts(fleet, tmp_path / "runs")
        long_, mid, quick = (a.hostname for a in fleet.agents)

        def execute(host: str, script: str) -> asyncio.Future:   # type: ignore[type-arg]
            return asyncio.ensure_future(vnfm.client.send(host, {"action": "EXECUTE", "payload": f"{script}.sh"},
                                                          correlation_id=f"op:EXECUTE/{host}/{script}"))

        sends = {(long_, "long"): execute(long_, "long"), (mid, "mid"): execute(mid, "mid")}
        await asyncio.sleep(0.3)
        sends[(mid, "next")] = execute(mid, "next")            # queued behind "mid"
        sends[(quick, "quick")] = execute(quick, "quick")
        replies = dict(zip(sends, await asyncio.wait_for(asyncio.gather(*sends.values()), 120), strict=True))
        for (host, script), reply in replies.items():
            assert reply.status == 0 and reply.output == f"{script} on {host}\n", (host, script, reply)
            assert (runs / f"{host}.{script}").read_text() == "ran\n"      # once
        # a command sent after it all
        fleet_after = await asyncio.wait_for(execute(quick, "next"), 60)
        assert fleet_after.status == 0
    finally:
        await fleet.stop()
        await vnfm.t.close()
        await asyncio.to_thread(node.cleanup)
    assert "event=amqp_consumer_channel_closed" in caplog.text
    assert "event=ems_consumer_restored" in caplog.text
    assert all(vnfm.registrations[h] >= 2 for h in (long_, mid, quick)), vnfm.registrations
