"""Run ``gvnfm vnfm`` as a process of its own, as it runs in production."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


class VnfmProcess:
    def __init__(self, *, broker: str, endpoint: str, state_dir: Path, db: str | None = None,
                 extra: list[str] | None = None, register: bool = True, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = [sys.executable, "-m", "gvnfm.cli.main", "vnfm", "--broker", broker, "--endpoint", endpoint,
                     "--type", endpoint, "--state-dir", str(state_dir), "--log-level", "INFO",
                     *(["--db", db] if db else []), *([] if register else ["--no-register"]), *(extra or [])]
        self.log_path = state_dir / f"vnfm-{id(self):x}.log"
        self.proc: asyncio.subprocess.Process | None = None
        state_dir.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: ASYNC230 - a log file for the child, opened once
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=log, stderr=log,
                                                         env=self.env)
        log.close()

    async def wait_for_log(self, needle: str, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self.log_path.exists() and needle in self.log_path.read_text(errors="replace"):
                return
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"gvnfm vnfm exited {self.proc.returncode}:\n{self.log()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{needle!r} not in the VNFM log after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def terminate(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
