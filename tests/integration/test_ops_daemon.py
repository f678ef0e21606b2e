"""`gvnfm vnfm` as an operator runs it, on a real RabbitMQ: /metrics and /healthz during a real
INSTANTIATE, and SIGTERM in each phase (connecting, registering, waiting for EMSs) with the
operation left for the next worker to finish."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gvnfm.ems.agent import EmsAgent
from gvnfm.transport import Delivery
from gvnfm.transport.amqp import AmqpTransport
from tests.integration.test_vnfm_rabbitmq import instantiate, nfvo_user, vnfd
from tests.support.fakes import FakeNfvo
from tests.support.hosts import ems_config_from_userdata
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq
SCRIPT = b"#!/bin/bash\necho installed on $hostname\n"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def log_order(text: str, *events: str) -> list[int]:
    """Position of each ``event=...`` in the log (-1 when absent)."""
    return [text.find(f"event={e}") for e in events]


class Hosts:
    """The VIM of the test NFVO: starts a real EMS per allocated host, or only notes the hostname."""

    def __init__(self, url: str, endpoint: str, tmp: Path, start: bool = True) -> None:
        self.url, self.endpoint, self.tmp, self.start = url, endpoint, tmp, start
        self.names: list[str] = []
        self.userdata: dict[str, str] = {}
        self.agents: list[EmsAgent] = []
        self.allocated = asyncio.Event()

    async def add(self, hostname: str, userdata: str) -> None:
        self.names.append(hostname)
        self.userdata[hostname] = userdata
        self.allocated.set()
        if self.start:
            await self.boot(hostname)

    async def boot(self, hostname: str) -> None:
        # configured as the VM's user-data configures it (its own broker user when the VNFM made one)
        agent = EmsAgent(ems_config_from_userdata(self.userdata[hostname], hostname, self.url,
                                                  root=str(self.tmp / "hosts" / hostname), script_timeout=30))
        await agent.start()
        self.agents.append(agent)

    async def stop(self) -> None:
        for a in self.agents:
            await a.stop()


async def _nfvo(url: str, endpoint: str, hosts: Hosts) -> tuple[AmqpTransport, FakeNfvo]:
    t = AmqpTransport(url)
    await t.connect()
    nfvo = FakeNfvo(t, host_factory=hosts.add,
                    credentials=await asyncio.to_thread(nfvo_user, url.rsplit("/", 1)[1], endpoint))
    await nfvo.start()
    return t, nfvo


async def _scrape(base: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(base + path)


async def test_metrics_and_health_during_a_real_instantiate(amqp_vhost: str, tmp_path: Path) -> None:
    endpoint = unique("gvnfm-ops")
    hosts = Hosts(amqp_vhost, endpoint, tmp_path)
    t, nfvo = await _nfvo(amqp_vhost, endpoint, hosts)
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm",
                       extra=["--http", "127.0.0.1:0", "--ems-start-timeout", "30"])
    try:
        await vnfm.start()
        await vnfm.wait_for_log("event=vnfm_started")
        match = re.search(r"event=http_started url=(\S+)", vnfm.log())
        assert match, vnfm.log()
        base = match.group(1)
        health = await _scrape(base, "/healthz")
        assert health.status_code == 200, health.text
        assert "broker: ok" in health.text and "store: ok" in health.text and "nfvo_registration: ok" in health.text
        assert (await _scrape(base, "/readyz")).status_code == 200
        before = samples((await _scrape(base, "/metrics")).text)
        v = vnfd("web", "web", 2, {"INSTANTIATE": ["install.sh"]}, {"k": "v"})
        call = asyncio.create_task(t.rpc(endpoint, json.dumps(instantiate(v, {"install.sh": SCRIPT})).encode(),
                                         timeout=90))
        await hosts.allocated.wait()
        during = (await _scrape(base, "/metrics")).text        # scraped while the operation runs
        assert "gvnfm_steps_in_flight" in during
        reply = json.loads(await call)
        assert reply["action"] == "INSTANTIATE", reply
        after = samples((await _scrape(base, "/metrics")).text)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("gvnfm_operations_total", action="INSTANTIATE", outcome="DONE") == 1
        assert delta("gvnfm_replies_sent_total", action="INSTANTIATE") == 1
        assert delta("gvnfm_operation_duration_seconds_count", action="INSTANTIATE") == 1
        assert delta("gvnfm_ems_registrations_total") == 2
        assert delta("gvnfm_ems_waits_total", outcome="registered") == 1
        assert delta("gvnfm_ems_wait_seconds_count") == 1
        assert delta("gvnfm_step_duration_seconds_count", event="INSTANTIATE") == 2     # one script, two VNFCs
        assert value(after, "gvnfm_steps_in_flight") == 0
        assert delta("gvnfm_ems_command_timeouts_total") == 0
        assert delta("gvnfm_store_commit_seconds_count") >= 2
        assert ("gvnfm_broker_reconnects_total", ()) in after
    finally:
        assert await vnfm.terminate() == 0, vnfm.log()
        assert "event=stopped" in vnfm.log() and "event=exit_now" not in vnfm.log(), vnfm.log()  # one signal
        assert nfvo.credentials[1] not in vnfm.log() and ":guest@" not in vnfm.log()    # no broker password
        await hosts.stop()
        await t.close()
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_user", endpoint], capture_output=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_while_connecting_exits_0(tmp_path: Path) -> None:
    vnfm = VnfmProcess(broker=f"amqp://guest:guest@127.0.0.1:{_closed_port()}/", endpoint="x",
                       state_dir=tmp_path / "vnfm")
    await vnfm.start()
    await vnfm.wait_for_log("event=amqp_connect_retry")
    assert await vnfm.terminate() == 0, vnfm.log()
    a, b, c = log_order(vnfm.log(), "vnfm_connecting", "stopping", "stopped")
    assert 0 <= a < b < c, vnfm.log()


async def test_sigint_during_nfvo_registration_exits_0_and_second_signal_is_immediate(amqp_vhost: str,
                                                                                      tmp_path: Path) -> None:
    t = AmqpTransport(amqp_vhost)
    await t.connect()
    asked = asyncio.Event()

    async def silent_nfvo(delivery: Delivery) -> None:     # takes the registration, never answers
        asked.set()
        await delivery.ack()

    await t.declare_queue("nfvo.manager.handling", durable=True)
    await t.consume("nfvo.manager.handling", silent_nfvo)
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=unique("reg"), state_dir=tmp_path / "vnfm")
    try:
        await vnfm.start()
        await asyncio.wait_for(asked.wait(), 60)
        assert vnfm.proc is not None
        vnfm.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(vnfm.proc.wait(), 30) == 0, vnfm.log()
        a, b = log_order(vnfm.log(), "stopping signal=SIGINT", "stopped")
        assert 0 <= a < b and "event=vnfm_started" not in vnfm.log(), vnfm.log()
    finally:
        await vnfm.kill()
        await t.close()


async def test_sigterm_while_waiting_for_ems_leaves_the_operation_to_the_next_worker(amqp_vhost: str,
                                                                                   tmp_path: Path) -> None:
    endpoint = unique("gvnfm-wait")
    hosts = Hosts(amqp_vhost, endpoint, tmp_path, start=False)     # the VMs' EMSs do not come up (yet)
    t, nfvo = await _nfvo(amqp_vhost, endpoint, hosts)
    first = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm",
                        extra=["--ems-start-timeout", "120"])
    second = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm",
                         extra=["--ems-start-timeout", "120"])
    try:
        await first.start()
        await first.wait_for_log("event=vnfm_started")
        v = vnfd("db", "db", 1, {"INSTANTIATE": ["install.sh"]}, {"k": "v"})
        answers: list[dict[str, Any]] = []

        async def ask() -> None:
            raw = await t.rpc(endpoint, json.dumps(instantiate(v, {"install.sh": SCRIPT})).encode(), timeout=120)
            answers.append(json.loads(raw))

        call = asyncio.create_task(ask())
        await asyncio.wait_for(hosts.allocated.wait(), 60)       # the VNFM now waits for the EMS
        # the next worker consumes the endpoint queue too (it is auto-delete by default, as the
        # reference's: with no consumer left it would go, and the unacknowledged message with it)
        await second.start()
        await second.wait_for_log("event=vnfm_started")
        assert await first.terminate() == 0, first.log()
        a, b = log_order(first.log(), "stopping signal=SIGTERM", "stopped")
        assert 0 <= a < b, first.log()
        assert answers == [] and "event=operation_end" not in first.log()    # nothing half answered
        # the next worker takes the unacknowledged message over and finishes it once the EMS is up
        await second.wait_for_log("event=operation_start")
        await hosts.boot(hosts.names[0])
        await asyncio.wait_for(call, 120)
        assert answers[0]["action"] == "INSTANTIATE", answers
        grants = [r for r in nfvo.requests if r["action"] == "ALLOCATE_RESOURCES"]
        assert len(grants) == 1, "the resumed operation allocated again"
    finally:
        await first.kill()
        assert await second.terminate() == 0, second.log()
        await hosts.stop()
        await t.close()
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_user", endpoint], capture_output=True)


async def test_sigterm_mid_script_answers_once_from_the_next_worker(amqp_vhost: str, tmp_path: Path) -> None:
    endpoint = unique("gvnfm-mid")
    hosts = Hosts(amqp_vhost, endpoint, tmp_path)
    t, nfvo = await _nfvo(amqp_vhost, endpoint, hosts)
    runs, release = tmp_path / "runs", tmp_path / "release"
    script = (f"#!/bin/bash\necho $$ >> {runs}\nwhile [ ! -e {release} ]; do sleep 0.1; done\necho ok\n").encode()
    first = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm")
    second = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm")
    try:
        await first.start()
        await first.wait_for_log("event=vnfm_started")
        v = vnfd("app", "app", 1, {"INSTANTIATE": ["long.sh"]}, {"k": "v"})
        call = asyncio.create_task(t.rpc(endpoint, json.dumps(instantiate(v, {"long.sh": script})).encode(),
                                         timeout=120))
        for _ in range(1200):                                  # hang guard; waits on the script's own mark
            if runs.exists():
                break
            await asyncio.sleep(0.05)
        assert runs.exists(), first.log()
        await second.start()                                   # the next worker (the queue is auto-delete)
        await second.wait_for_log("event=vnfm_started")
        assert await first.terminate() == 0, first.log()       # mid-script
        assert not call.done() and "event=operation_end" not in first.log()
        await second.wait_for_log("event=operation_start")
        release.touch()
        reply = json.loads(await asyncio.wait_for(call, 120))
        assert reply["action"] == "INSTANTIATE", reply
        assert len(runs.read_text().split()) == 1, "the script ran twice"
        assert len([r for r in nfvo.requests if r["action"] == "ALLOCATE_RESOURCES"]) == 1
    finally:
        release.touch()
        await first.kill()
        assert await second.terminate() == 0, second.log()
        await hosts.stop()
        await t.close()
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_user", endpoint], capture_output=True)


async def test_ems_sigterm_while_connecting_and_after_registering(amqp_vhost: str, tmp_path: Path) -> None:
    import os
    import sys

    async def run(url: str, needle: str) -> str:
        log = tmp_path / f"ems-{unique('l')}.log"
        with open(log, "wb") as fh:  # noqa: ASYNC230 - the child's log file, opened once
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gvnfm.cli.main", "ems", "--broker-url", url, "--hostname", unique("h"),
                "--type", unique("t"), "--root", str(tmp_path / "ems"), "--http", "127.0.0.1:0",
                stdout=fh, stderr=fh, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            for _ in range(1200):
                if needle in log.read_text():
                    break
                assert proc.returncode is None, log.read_text()
                await asyncio.sleep(0.05)
            text = log.read_text()
            assert needle in text, text
            if "event=ems_register_waiting" in needle:
                base = re.search(r"event=http_started url=(\S+)", text)
                assert base, text
                health = await _scrape(base.group(1), "/healthz")
                assert health.status_code == 200 and "broker: ok" in health.text, health.text
                assert "gvnfm_ems_scripts_total" in (await _scrape(base.group(1), "/metrics")).text
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()
            return log.read_text()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    text = await run(f"amqp://guest:guest@127.0.0.1:{_closed_port()}/", "connect")
    assert "event=stopping signal=SIGTERM" in text
    text = await run(amqp_vhost, "event=ems_register_waiting")     # connected, no VNFM yet
    a, b = log_order(text, "stopping signal=SIGTERM", "stopped")
    assert 0 <= a < b and "event=exit_now" not in text, text     # the HTTP server did not take the signal
