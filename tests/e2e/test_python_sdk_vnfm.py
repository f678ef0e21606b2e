"""The local NFVO against a real peer it does not share code with: a third-party VNFM built on Open
Baton's python-vnfm-sdk 6.0.0 (from PyPI, in a venv of its own) manages `examples/chain` through
`gvnfm up --broker amqp://...`: registration, GRANT_OPERATION, ALLOCATE_RESOURCES with the SDK's
user-data `none` (hosts without an EMS), INSTANTIATE/MODIFY/START answered without a correlation id,
a scale-out (the SDK reads the SCALED answer's `vnfr`), and the teardown. The in-process gvnfm VNFM
runs on another endpoint and manages nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from tests.support.sdk_venv import sdk_python

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
APP = ROOT / "tests" / "support" / "sdk_vnfm_app.py"
HANG_GUARD = 240.0


async def _queues(url: str, *, declare: bool) -> int:
    """Declare the NFVO's registration queue and the SDK VNFM's endpoint queue as their owners do
    (durable, auto-delete, bound to the topic exchange), so that neither side's first message is lost
    whichever starts first; returns the registration messages waiting."""
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        if declare:
            exchange = await ch.declare_exchange("openbaton-exchange", aio_pika.ExchangeType.TOPIC, durable=True)
            for name in ("nfvo.manager.handling", "generic"):
                queue = await ch.declare_queue(name, durable=True, auto_delete=True)
                await queue.bind(exchange, name)
        queue = await ch.declare_queue("nfvo.manager.handling", passive=True)
        return queue.declaration_result.message_count or 0
    finally:
        await conn.close()


def _wait(what: Callable[[], bool], text: str, *procs: subprocess.Popen[bytes], logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not what():
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[:4]} exited ({proc.returncode}) before {text}:\n{logs()}"
        assert time.monotonic() < deadline, f"hang guard: {text}\n{logs()}"
        time.sleep(0.2)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)      # the SDK unregisters on Ctrl-C
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_python_sdk_vnfm_deploys_scales_out_and_tears_down_chain(
        amqp_vhost: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    python = sdk_python()
    parts = urlsplit(amqp_vhost)
    vhost = unquote(parts.path.lstrip("/"))
    asyncio.run(_queues(amqp_vhost, declare=True))

    events = tmp_path / "sdk-events.jsonl"
    events.touch()
    config = tmp_path / "sdk-vnfm.ini"
    config.write_text(f"[vnfm]\ntype=generic\nendpoint=generic\nbroker_ip={parts.hostname}\nusername={parts.username}\n"
                      f"password={parts.password}\nheartbeat=60\nlog_path={tmp_path / 'sdk-logs'}\n"
                      f"userdata_path={tmp_path / 'no-userdata.sh'}\n")
    sdk_out, up_out = tmp_path / "sdk.out", tmp_path / "up.out"
    state = tmp_path / "state"
    hosts = state / "vim" / "hosts"

    def logs() -> str:
        return (f"--- gvnfm up ---\n{up_out.read_text(errors='replace') if up_out.exists() else ''}\n"
                f"--- SDK VNFM ---\n{sdk_out.read_text(errors='replace')}\n--- SDK calls ---\n{events.read_text()}")

    def calls(action: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        return [c for c in lines if action is None or c["action"] == action]

    with sdk_out.open("wb") as fh:
        sdk = subprocess.Popen([str(python), str(APP), str(config), vhost, str(parts.port or 5672), str(events)],
                               stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    processes.append(sdk)
    # the SDK's registration waits in the NFVO's queue before gvnfm up starts (so the NS finds its VNFM)
    _wait(lambda: asyncio.run(_queues(amqp_vhost, declare=False)) >= 1, "the SDK VNFM registers", sdk, logs=logs)

    with up_out.open("wb") as fh:
        up = subprocess.Popen([sys.executable, "-m", "gvnfm.cli.main", "up", str(ROOT / "examples" / "chain"),
                               "--plain", "--state-dir", str(state), "--broker", amqp_vhost, "--endpoint", "gvnfm-own",
                               "--api-port", "0", "--teardown-timeout", "60"],
                              stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    processes.append(up)
    _wait(lambda: "network service ACTIVE" in up_out.read_text(errors="replace"), "the chain is ACTIVE", up, sdk,
          logs=logs)

    # deployed by the SDK VNFM in the reference NFVO's order, on hosts the SDK's user-data ("none") gave
    assert sorted(c["vnfr"] for c in calls("INSTANTIATE")) == ["app", "db", "web"], logs()
    assert sorted((c["vnfr"], c["sources"]) for c in calls("MODIFY")) == [("app", ["db"]), ("web", ["app"])], logs()
    assert sorted(c["vnfr"] for c in calls("START")) == ["app", "db", "web"], logs()
    deployed = {i["hostname"] for c in calls("START") for i in c["instances"]}
    assert len(deployed) == 4 and {h.name for h in hosts.iterdir()} == deployed, logs()
    assert not list(hosts.glob("*/etc/openbaton/openbaton-ems.properties"))     # no EMS: the user-data was "none"

    scaled = subprocess.run([sys.executable, "-m", "gvnfm.cli.main", "scale-out", "app", "--state-dir", str(state)],
                            capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr + logs()
    (scale_out,) = calls("SCALE_OUT")
    new = scale_out["new"]
    assert new and new not in deployed and new.startswith("app-") and new in scaled.stdout, logs()
    assert (hosts / new).is_dir()
    # the SDK found the new VNFC instance in the SCALED answer's `vnfr`, of the component the NFVO added
    assert [i["component"] for i in scale_out["instances"] if i["hostname"] == new] == [scale_out["new_component"]]
    _wait(lambda: len(calls("MODIFY")) == 3, "web is reconfigured with the new app VNFC", up, sdk, logs=logs)
    assert calls("MODIFY")[-1]["vnfr"] == "web"

    # restart app as the NFVO's restartVnfr: hosts rebuilt, INSTANTIATE carrying the VNFR; the SDK then
    # skips GRANT, ALLOCATE and its instantiate() (`if msg.get("vnfr") is None`) and answers INSTANTIATE
    app_hosts = sorted(i["hostname"] for i in calls("SCALE_OUT")[0]["instances"])
    modifies = len(calls("MODIFY"))
    restarted = subprocess.run([sys.executable, "-m", "gvnfm.cli.main", "restart", "app", "--state-dir", str(state)],
                               capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)
    assert restarted.returncode == 0 and "app: ACTIVE" in restarted.stdout, restarted.stdout + restarted.stderr + logs()
    assert len(calls("INSTANTIATE")) == 3                          # no instantiate(), no new VNFR
    assert [c["vnfr"] for c in calls("MODIFY")[modifies:]] == ["app"] and calls("START")[-1]["vnfr"] == "app"
    assert sorted(i["hostname"] for i in calls("START")[-1]["instances"]) == app_hosts       # the same hosts
    assert {h.name for h in hosts.iterdir()} == deployed | {new}

    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(HANG_GUARD) == 0, logs()
    assert "torn down" in up_out.read_text(errors="replace"), logs()
    assert sorted(c["vnfr"] for c in calls("RELEASE_RESOURCES")) == ["app", "db", "web"], logs()
    assert not any(hosts.iterdir()), logs()
