"""Case ``ems-footprint``: one idle EMS agent as deployed on a VM (``gvnfm ems --config <Open Baton
properties file>``) against a bare aio-pika process publishing the same registration
(``bench.ems_floor``), alternately, each a fresh process.

Time: from the spawn to the registration's arrival on the register queue (read by the bench).
Memory: VmRSS of the process once registered and idle (``SETTLE`` seconds after the registration).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import aio_pika

from bench.config import BenchConfig
from bench.procs import REPO_ROOT, child_env, proc_status
from bench.report import Report, Row
from bench.timing import timed_window
from gvnfm.catalogue.queues import ems_register_queue

SETTLE = 0.5   # seconds of idling before the memory is read


def gvnfm_argv(props: Path, root: Path) -> list[str]:
    """The console script as installed (``gvnfm ems``), else the same entry through ``-m``."""
    script = Path(sys.executable).parent / "gvnfm"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "gvnfm.cli.entry"]
    return [*head, "ems", "--config", str(props), "--root", str(root)]


def properties(url: str, exchange: str, type_: str, hostname: str) -> str:
    """An ``[ems]`` section as Open Baton's user-data script writes it."""
    parsed = aio_pika.connection.URL(url)
    return (f"[ems]\nbroker_ip={parsed.host}\nbroker_port={parsed.port or 5672}\nusername={parsed.user}\n"
            f"password={parsed.password}\nexchange={exchange}\nheartbeat=60\nautodelete=true\n"
            f"type={type_}\nhostname={hostname}\n")


class _Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.at[json.loads(message.body)["hostname"]] = time.perf_counter()
        await message.ack()
        self.changed.set()

    async def wait(self, hostname: str, proc: asyncio.subprocess.Process, timeout: float) -> float:
        async with asyncio.timeout(timeout):
            while hostname not in self.at:
                if proc.returncode is not None:
                    raise RuntimeError(f"the process exited with {proc.returncode} before registering")
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.1)
        return self.at[hostname]


async def _one(argv: list[str], hostname: str, arrivals: _Arrivals, log: Path, timeout: float) -> tuple[float, int]:
    with contextlib.ExitStack() as window:
        window.enter_context(timed_window())
        with log.open("ab") as err:
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, stdout=err,
                                                        stderr=err, env={**os.environ, **child_env()}, cwd=REPO_ROOT)
        try:
            seconds = await arrivals.wait(hostname, proc, timeout) - t0
            window.close()   # the window ends with the registration's arrival
            await asyncio.sleep(SETTLE)
            rss = proc_status(proc.pid).get("VmRSS", 0)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    return seconds, rss


async def ems_footprint(cfg: BenchConfig, workdir: Path, report: Report) -> None:
    tag = uuid.uuid4().hex[:8]
    exchange, type_ = f"bench-{tag}-exchange", f"bench-{tag}-ems"
    queue_name = ems_register_queue(type_)
    folder = workdir / "ems-footprint"
    folder.mkdir(parents=True, exist_ok=True)
    conn = await aio_pika.connect(cfg.broker)   # not robust: a robust channel re-declares a deleted queue
    arrivals = _Arrivals()
    ours: list[tuple[float, int]] = []
    floor: list[tuple[float, int]] = []
    channel = await conn.channel()
    try:
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(queue_name, auto_delete=True)
        await queue.bind(ex, routing_key=queue_name)
        await queue.consume(arrivals.on_message)
        for i in range(max(5, cfg.repeat)):
            host = f"b{tag}-ems-{i}"
            props = folder / f"{host}.properties"
            props.write_text(properties(cfg.broker, exchange, type_, host))
            props.chmod(0o600)
            ours.append(await _one(gvnfm_argv(props, folder / host), host, arrivals, folder / "gvnfm.log",
                                   cfg.op_timeout))
            host = f"b{tag}-floor-{i}"
            floor.append(await _one([sys.executable, "-m", "bench.ems_floor", cfg.broker, exchange, queue_name, host],
                                    host, arrivals, folder / "floor.log", cfg.op_timeout))
            shutil.rmtree(folder / f"b{tag}-ems-{i}", ignore_errors=True)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()   # the consumer first: no "consumer cancelled by the broker"
        with contextlib.suppress(Exception):
            ch = await conn.channel()
            await ch.queue_delete(queue_name)
        with contextlib.suppress(Exception):
            await ch.exchange_delete(exchange)
        await conn.close()
    report.add(Row.paired("ems start", 1, [s for s, _ in ours], [s for s, _ in floor], target=2.0, detail={
        "note": "`gvnfm ems --config <properties>`: spawn → registration on the register queue, against bare "
                "aio-pika connect + publish"}))
    report.add(Row.paired("ems RSS", 1, [r for _, r in ours], [r for _, r in floor], unit="KiB", target=1.3, detail={
        "note": f"idle and registered ({SETTLE:g} s after), VmRSS, against the same bare aio-pika process"}))
