"""Child processes of the bench (the VNFM, the EMS fleet, the floor's consumer): start, wait until
ready, read their memory from /proc, stop them gracefully (SIGTERM, then SIGKILL after a bound)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path


class ChildError(RuntimeError):
    """A child process died or did not get ready in time."""


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / VmSize (KiB) of a live process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                out[key] = int(value.split()[0])
    return out


_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the bench dies (even by SIGKILL), so no VNFM or
    fleet outlives a killed bench (Linux; silently nothing elsewhere)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process (all its threads) has used so far, children excluded."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread and of all other threads (e.g. aiosqlite's, the child watcher's)."""
    main = cpu_seconds(pid)
    others = 0.0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            if task.name != str(pid):
                others += cpu_seconds_of(task / "stat")
    return {"main": main_thread_cpu(pid), "threads": others, "process": main}


def cpu_seconds_of(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS   # utime, stime (fields 14 and 15 of stat)


def main_thread_cpu(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/task/{pid}/stat"))


_broker_pid: int | None = None


def broker_cpu_seconds() -> float:
    """CPU seconds used so far by the local broker (RabbitMQ's ``beam.smp`` on this machine; 0 when none
    is found, e.g. a remote broker): the traffic of gvnfm and of its floor costs the broker differently."""
    global _broker_pid
    if _broker_pid is None or not Path(f"/proc/{_broker_pid}").exists():
        _broker_pid = next((int(p.name) for p in Path("/proc").iterdir()
                            if p.name.isdigit() and _comm(p) == "beam.smp"), None)
    return cpu_seconds(_broker_pid) if _broker_pid is not None else 0.0


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the local PostgreSQL server (its ``postgres`` processes): each live one's,
    plus what its exited children used (the postmaster's ``cutime``: a backend's CPU moves there when its
    connection ends, so the sum does not fall). 0 when none is found."""
    return sum(cpu_seconds(int(p.name)) + children_cpu_seconds(int(p.name)) for p in Path("/proc").iterdir()
               if p.name.isdigit() and _comm(p) == "postgres")


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the process's waited-for children (the scripts an EMS ran): cutime + cstime."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / _TICKS


class Child:
    """One child process; its stdout lines are collected, its stderr goes to ``log``."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = {**os.environ, **child_env(), **(env or {})}
        self.cwd = cwd
        self.lines: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._line_seen = asyncio.Event()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ChildError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def start(self, *, ready_line: str | None = None,
                    ready: Callable[[], Awaitable[bool]] | None = None, timeout: float = 60.0) -> None:
        """Start, then wait until a stdout line starts with ``ready_line`` and/or ``ready()`` is true."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as err:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=err, stdin=asyncio.subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True, preexec_fn=_die_with_parent)
        self._reader = asyncio.create_task(self._read())
        try:
            async with asyncio.timeout(timeout):
                if ready_line is not None:
                    await self.wait_line(ready_line)
                while ready is not None and not await ready():
                    self._check_alive()
                    await asyncio.sleep(0.05)
        except TimeoutError as exc:
            await self.stop(grace=2)
            raise ChildError(f"{self.name} was not ready within {timeout:g} s; see {self.log}") from exc

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._line_seen.set()

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            raise ChildError(f"{self.name} exited with status {self._proc.returncode}; see {self.log}")

    async def wait_line(self, prefix: str) -> str:
        while True:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            self._check_alive()
            if self._reader is not None and self._reader.done():
                raise ChildError(f"{self.name} closed its output before printing {prefix!r}; see {self.log}")
            self._line_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._line_seen.wait(), 0.2)

    def memory(self) -> dict[str, int]:
        self._check_alive()
        return proc_status(self.pid)

    def cpu(self) -> float:
        """CPU seconds of the process and of the children it waited for."""
        return cpu_seconds(self.pid) + children_cpu_seconds(self.pid)

    def cpu_parts(self) -> dict[str, float]:
        """CPU seconds by where they were spent: main thread, other threads, waited-for children."""
        return {**{k: v for k, v in thread_cpu_seconds(self.pid).items() if k != "process"},
                "children": children_cpu_seconds(self.pid)}

    async def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the process group."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return proc.returncode


#: The folder holding the ``bench`` package: children import ``bench.*`` whatever their working folder.
REPO_ROOT = Path(__file__).resolve().parent.parent


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env() -> dict[str, str]:
    paths = [str(REPO_ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
