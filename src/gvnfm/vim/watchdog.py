"""A watchdog that outlives ``gvnfm up`` by exactly as long as it takes to clean up after it.

``gvnfm up`` starts it with a pipe on its standard input and keeps the write end. When the pipe
closes (a clean exit closes it after the teardown; ``kill -9`` or a crash closes it with the process),
the watchdog kills every process of every local host under the hosts folder (EMS agents, scripts and
the daemons they left, found by the host marker, see ``reaper``), removes the host folders and exits.
It runs in a session of its own, so the terminal's Ctrl-C does not reach it.

Invariant: after ``gvnfm up`` is gone, whatever way it went, no process of its process hosts survives
longer than the watchdog's reaping (a second or so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from gvnfm.vim.reaper import reap

log = logging.getLogger(__name__)


class Watchdog:
    """The running watchdog of one hosts folder."""

    def __init__(self, hosts_dir: Path) -> None:
        self.hosts_dir = hosts_dir.resolve()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gvnfm.vim.watchdog", str(self.hosts_dir)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        log.info("event=watchdog_started pid=%d hosts=%s", self._proc.pid, self.hosts_dir)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def stop(self, timeout: float = 30.0) -> None:
        """Close the pipe: the watchdog reaps what is left (nothing, after a teardown) and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def watch(hosts_dir: Path) -> list[int]:
    """Block until standard input closes, then reap every host under ``hosts_dir``; returns the pids."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    while sys.stdin.buffer.read(65536):
        pass
    pids = reap(hosts_dir, under=True)
    if hosts_dir.is_dir():
        for root in hosts_dir.iterdir():
            if root.is_dir():
                shutil.rmtree(root, ignore_errors=True)
    return pids


if __name__ == "__main__":
    watch(Path(sys.argv[1]))
