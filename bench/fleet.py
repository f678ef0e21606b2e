"""Starts and watches the EMS fleet process (``bench.fleet_proc``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from bench.procs import Child, python_argv
from gvnfm.ems.agent import fleet_hostnames


class FleetProcess:
    def __init__(self, *, url: str, exchange: str, endpoint: str, prefix: str, count: int, workdir: Path,
                 hold: bool = False, profile: Path | None = None, log_level: str = "INFO",
                 tag: str = "fleet") -> None:
        self.count = count
        self.hold = hold
        self.hostnames = fleet_hostnames(prefix, count, prefix)
        argv = python_argv("-m", "cProfile", "-o", str(profile)) if profile else python_argv()
        argv += ["-m", "bench.fleet_proc", "--url", url, "--exchange", exchange, "--endpoint", endpoint,
                 "--prefix", prefix, "--count", str(count), "--root", str(workdir / f"{tag}-root"),
                 "--log-level", log_level]
        if hold:
            argv.append("--hold")
        self.child = Child(tag, argv, log=workdir / f"{tag}.log")
        self.stats: dict[str, int] = {}

    async def start(self) -> None:
        await self.child.start(ready_line="READY", timeout=60 + self.count / 10)

    def go(self) -> None:
        """Hold mode: every agent registers now."""
        os.kill(self.child.pid, signal.SIGUSR1)

    async def registered(self, timeout: float = 30.0) -> dict[str, float]:
        """Hold mode, after ``go``: how many agents registered and how long publishing took."""
        async with asyncio.timeout(timeout):
            line = await self.child.wait_line("REGISTERED")
        _, n, seconds = line.split()
        return {"agents": int(n), "publish_seconds": float(seconds)}

    def memory(self) -> dict[str, int]:
        return self.child.memory()

    async def stop(self) -> None:
        await self.child.stop(grace=30)
        for line in reversed(self.child.lines):
            if line.startswith("{"):
                self.stats = json.loads(line)
                break
