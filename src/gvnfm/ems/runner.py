"""Run one script: no shell, own process group, bounded streamed output, time limit, optional user.

- stdout and stderr are read in chunks as the script writes them; only the last ``max_output`` bytes
  of each are kept, and a cut is marked ``[... N bytes cut ...]`` at the start of the kept tail.
- the script runs in a new session (``start_new_session``); on timeout (or cancellation) the whole
  process group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds; the status is 124 and the
  error text says ``timed out after N s``.
- a script that leaves a background process holding its stdout/stderr (a daemon it started) is
  answered as soon as the script itself exits (plus ``drain_grace``); the pipes of such processes
  keep being drained (and discarded) in the background, so they never get SIGPIPE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_STATUS = 124
_CHUNK = 64 * 1024
_background: set[_ScriptProtocol] = set()   # scripts answered whose pipes a daemon still holds


@dataclass
class ScriptResult:
    status: int
    stdout: str
    stderr: str
    timed_out: bool = False
    duration: float = 0.0
    stdout_bytes: int = 0
    stderr_bytes: int = 0


class TailBuffer:
    """Keeps the last ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.buf = bytearray()
        self.total = 0
        self.discard = False

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.discard:
            return
        if len(data) >= self.limit:
            self.buf = bytearray(data[-self.limit:])
            return
        self.buf += data
        excess = len(self.buf) - self.limit
        if excess > 0:
            del self.buf[:excess]

    @property
    def cut(self) -> int:
        return self.total - len(self.buf)

    def text(self) -> str:
        body = bytes(self.buf).decode("utf-8", "replace")
        return f"[... {self.cut} bytes cut ...]\n{body}" if self.cut else body


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, user: str) -> RunAs:
        try:
            entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        except KeyError as exc:
            raise ValueError(f"run_as user {user!r} does not exist") from exc
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def check_possible(self) -> None:
        if os.geteuid() != 0 and os.geteuid() != self.uid:
            raise ValueError(f"run_as={self.user!r} needs the agent to run as root (it runs as uid {os.geteuid()})")

    def env(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.user, "LOGNAME": self.user}


def bash() -> str:
    return "/bin/bash" if os.path.exists("/bin/bash") else (shutil.which("bash") or "/bin/bash")


def script_argv(script: Path, args: Sequence[str]) -> list[str]:
    """``.py`` (by suffix) and shebang scripts are executed directly, everything else by bash."""
    direct = script.suffix == ".py"
    if not direct:
        try:
            with open(script, "rb") as fh:
                direct = fh.read(2) == b"#!"
        except OSError:
            direct = False
    return [str(script), *args] if direct else [bash(), str(script), *args]


class _PidfdChildWatcher(asyncio.AbstractChildWatcher):
    """Python 3.11's default child watcher starts a thread per child process to wait for it; this one
    (what Python 3.12 uses by default on Linux) waits on a pidfd in the running loop instead: no thread
    per script, and about 0.25 ms less CPU per spawn (measured in docs/performance.md). It works with
    whichever loop is running, so it can be installed once for the process."""

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def __enter__(self) -> _PidfdChildWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_child_handler(self, pid: int, callback: Any, *args: Any) -> None:
        loop: Any = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop._add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

    @staticmethod
    def _reap(loop: Any, pid: int, pidfd: int, callback: Any, args: tuple[Any, ...]) -> None:
        loop._remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:   # reaped elsewhere
            returncode = 255
        finally:
            os.close(pidfd)
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True


def use_pidfd_child_watcher() -> bool:
    """On Python 3.11 under Linux ≥ 5.3, wait for scripts with pidfds instead of a thread each
    (idempotent; a no-op on 3.12+, where that is the default, and where pidfds are unavailable)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        if isinstance(getattr(policy, "_watcher", None), _PidfdChildWatcher):
            return True
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            return False
        asyncio.set_child_watcher(_PidfdChildWatcher())
    return True


class _ScriptProtocol(asyncio.SubprocessProtocol):
    """Feeds the script's stdout and stderr straight into their tail buffers as the pipes deliver
    them (no stream readers, no reader tasks), and tells when the process has exited (``exited``) and
    when both pipes are closed (``pipes_closed``): a daemon started by the script may keep them open
    after the script itself has exited; its output is then counted and discarded."""

    def __init__(self, out: TailBuffer, err: TailBuffer, loop: asyncio.AbstractEventLoop) -> None:
        self._sinks = {1: out, 2: err}
        self._open = 2
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._sinks[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open -= 1
        if self._open <= 0 and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)
            if self.answered:   # the daemon that held them is gone: the background drain ends
                _background.discard(self)
                self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def _wait(future: asyncio.Future[None], timeout: float | None) -> bool:
    """Wait (at most ``timeout`` seconds) for ``future`` without cancelling it; True if it is done."""
    if not future.done():
        await asyncio.wait((future,), timeout=timeout)
    return future.done()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _kill_group(pgid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds (also when the leader already left:
    its children may still be in the group)."""
    if grace > 0:
        _signal_group(pgid, signal.SIGTERM)
        await _wait(exited, grace)
    _signal_group(pgid, signal.SIGKILL)
    await _wait(exited, 10)


async def run_script(argv: Sequence[str], *, cwd: str | os.PathLike[str] | None, env: Mapping[str, str] | None,
                     timeout: float | None, max_output: int, run_as: RunAs | None = None,
                     kill_grace: float = 2.0, drain_grace: float = 1.0) -> ScriptResult:
    """Run ``argv`` (a list: nothing is interpreted by a shell) and collect its result. Never raises
    for a script problem (missing file, not executable, time-out): those are statuses."""
    started = time.monotonic()
    kwargs: dict[str, Any] = {}
    if run_as is not None:
        kwargs.update(user=run_as.uid, group=run_as.gid)
        if os.geteuid() == 0:
            kwargs["extra_groups"] = []
    out, err = TailBuffer(max_output), TailBuffer(max_output)
    loop = asyncio.get_running_loop()
    protocol = _ScriptProtocol(out, err, loop)
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: protocol, *argv, cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            **kwargs)
    except FileNotFoundError as exc:
        return ScriptResult(127, "", f"cannot execute {argv[0]}: {exc.strerror or exc}",
                            duration=time.monotonic() - started)
    except PermissionError as exc:
        return ScriptResult(126, "", f"cannot execute {argv[0]}: {exc.strerror or exc}",
                            duration=time.monotonic() - started)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return ScriptResult(126, "", f"cannot execute {argv[0]}: {exc}", duration=time.monotonic() - started)

    pgid = transport.get_pid()
    timed_out = False
    try:
        if not await _wait(protocol.exited, timeout):
            timed_out = True
            await _kill_group(pgid, protocol.exited, kill_grace)
        await _wait(protocol.pipes_closed, drain_grace)
    except asyncio.CancelledError:
        await _kill_group(pgid, protocol.exited, 0)
        out.discard = err.discard = True
        protocol.close()
        raise
    stdout, stderr = out.text(), err.text()
    returncode = transport.get_returncode()
    protocol.answered = True
    if protocol.pipes_closed.done():
        protocol.close()
    else:   # a daemon holds the pipes: keep draining them (discarded) until it closes them
        out.discard = err.discard = True
        _background.add(protocol)
    status = returncode if returncode is not None else -9
    if timed_out:
        status = TIMEOUT_STATUS
        note = f"[gvnfm-ems] script timed out after {timeout:g} s; its process group was killed"
        stderr = f"{stderr}\n{note}" if stderr else note
    return ScriptResult(status, stdout, stderr, timed_out=timed_out, duration=time.monotonic() - started,
                        stdout_bytes=out.total, stderr_bytes=err.total)
