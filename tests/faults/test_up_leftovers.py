"""A killed `gvnfm up` leaves no queue whose stale messages a later run takes (real RabbitMQ): its
endpoint queue goes with it, and a run finding an earlier run's queue discards it, messages included,
before it starts."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import aio_pika
import aiormq
import pytest

from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
from gvnfm.transport.amqp import AmqpTransport
from tests.support.services import unique

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]

ROOT = Path(__file__).parents[2]
CHAIN = ROOT / "examples" / "chain"


async def queue_exists(url: str, name: str) -> bool:
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        try:
            await ch.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await conn.close()


async def test_a_run_discards_an_earlier_runs_queue_and_messages_at_once(
        amqp_vhost: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    endpoint = unique("up-left")
    old = AmqpTransport(amqp_vhost)
    await old.connect()
    try:   # what an earlier run left: a durable queue (the flags of earlier versions) with an INSTANTIATE
        await old.declare_queue(endpoint, durable=True)
        await old.publish(endpoint, json.dumps({"action": "INSTANTIATE", "vnfd": {"name": "stale"}}).encode(),
                          reply_to="gone", correlation_id="stale-1")
    finally:
        await old.close()
    async with LocalRuntime(RuntimeOptions(state_dir=tmp_path, broker=amqp_vhost, endpoint=endpoint)) as rt:
        assert rt.store is not None
        assert f"event=stale_messages_discarded queue={endpoint} count=1" in caplog.text
        assert await rt.store.list_operations() == []     # the stale INSTANTIATE was never taken
    assert not await queue_exists(amqp_vhost, endpoint)    # auto-delete: gone with the run


async def test_gvnfm_up_killed_mid_deployment_leaves_nothing_for_the_next_run(amqp_vhost: str, tmp_path: Path) -> None:
    endpoint = unique("up-kill")
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "gvnfm.cli.main", "up", str(CHAIN), "--plain", "--state-dir", str(state),
            "--api-port", "-1", "--broker", amqp_vhost, "--endpoint", endpoint]
    first = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                 cwd=ROOT)
    hosts = state / "vim" / "hosts"
    for _ in range(2400):     # hang guard only: until the first host exists (INSTANTIATE under way)
        if hosts.is_dir() and any(hosts.iterdir()):
            break
        await asyncio.sleep(0.05)
    assert await queue_exists(amqp_vhost, endpoint)
    first.kill()
    await first.wait()
    for _ in range(600):      # the broker sees the connection close: the auto-delete queue goes
        if not await queue_exists(amqp_vhost, endpoint):
            break
        await asyncio.sleep(0.05)
    assert not await queue_exists(amqp_vhost, endpoint)

    second = await asyncio.create_subprocess_exec(*argv, "--once", stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, cwd=ROOT)
    out, _ = await asyncio.wait_for(second.communicate(), 300)
    text = out.decode(errors="replace")
    assert second.returncode == 0, text
    assert "stale_messages_discarded" not in text      # nothing was left to discard
