"""The EMS agent (a `gvnfm ems` process on the real broker) killed with SIGKILL at random points of 20
commands, restarted each time: every script runs exactly once, every command is answered. The VNFM's
side is its EmsClient, which sends a command in flight once more when the EMS registers again (its
auto-delete queue went with the killed agent, and with it the command if not yet taken)."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.ems_peers import EmsClientVnfm
from tests.support.services import unique

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]

RUNS = int(os.environ.get("GVNFM_EMS_KILL_RUNS", "20"))
SCRIPT = """#!/bin/bash
echo start >> "{runs}"
sleep {seconds}
echo end >> "{runs}"
echo "done {n}"
"""


class Agent:
    """A `gvnfm ems` process of one host, started again after every kill."""

    def __init__(self, url: str, hostname: str, endpoint: str, root: Path) -> None:
        self.args = [sys.executable, "-m", "gvnfm.cli.main", "ems", "--broker-url", url, "--hostname", hostname,
                     "--type", endpoint, "--root", str(root), "--log-level", "INFO"]
        self.log_path = root.parent / f"{hostname}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: ASYNC230 - the child's log, opened once
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=log, stderr=log,
                                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def vnfm(amqp_vhost: str) -> AsyncIterator[EmsClientVnfm]:
    v = EmsClientVnfm(amqp_vhost, unique("emskill"))
    await v.start()
    try:
        yield v
    finally:
        await v.t.close()


async def test_sigkill_at_random_points_runs_each_script_once_and_answers_each(
        vnfm: EmsClientVnfm, amqp_vhost: str, tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("GVNFM_CRASH_SEED", "14"))
    hostname = unique("host")
    root = tmp_path / "root"
    scripts = root / "scripts"
    scripts.mkdir(parents=True)
    agent = Agent(amqp_vhost, hostname, vnfm.endpoint, root)
    await agent.start()
    await asyncio.wait_for(vnfm.registered.wait(), 60)      # hang guard only
    try:
        for n in range(RUNS):
            runs = tmp_path / f"runs.{n}"
            script = scripts / f"run{n}.sh"
            script.write_text(SCRIPT.format(runs=runs, seconds=0.8, n=n))
            script.chmod(0o755)
            send = asyncio.ensure_future(vnfm.client.send(
                hostname, {"action": "EXECUTE", "payload": f"run{n}.sh"}, correlation_id=f"op:EXECUTE/{n}"))
            await asyncio.sleep(rng.uniform(0.0, 1.4))        # a random point: before, during or after
            await agent.kill()
            vnfm.registered.clear()
            await agent.start()
            reply = await asyncio.wait_for(send, 180)          # hang guard only
            assert reply.status == 0 and f"done {n}" in reply.output, (n, reply)
            assert runs.read_text() == "start\nend\n", (n, runs.read_text())
            await asyncio.wait_for(vnfm.registered.wait(), 60)
    finally:
        await agent.kill()
    log = agent.log_path.read_text()
    assert "event=ems_script_adopted" in log     # some kills did land while a script ran
