"""Run one script: no shell, own process group, bounded streamed output, time limit, optional user.

- stdout and stderr are read in chunks as the script writes them; only the last ``max_output`` bytes
  of each are kept, and a cut is marked ``[... N bytes cut ...]`` at the start of the kept tail.
- the script runs in a new session (``start_new_session``); on timeout (or cancellation) the whole
  process group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds; the status is 124 and the
  error text says ``timed out after N s``.
- a script that leaves a background process holding its stdout/stderr (a daemon it started) is
  answered as soon as the script itself exits (plus ``drain_grace``); the agent then stops reading
  those pipes (a chatty daemon would otherwise keep it busy for its whole life).
- with a spool (:mod:`gvnfm.ems.journal`, set for an EXECUTE that has a key), the output goes to files
  and the exit status is written by a wrapper, so that a restarted agent can answer the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvnfm.ems import journal

TIMEOUT_STATUS = 124
_CHUNK = 64 * 1024


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


@functools.cache
def bash() -> str:
    """The bash every other script runs with (looked up once per process, not per script)."""
    return "/bin/bash" if os.path.exists("/bin/bash") else (shutil.which("bash") or "/bin/bash")


@functools.cache
def posix_sh() -> str:
    """The ``sh`` of the spool's wrapper (looked up once per process)."""
    return "/bin/sh" if os.path.exists("/bin/sh") else (shutil.which("sh") or bash())


def script_argv(script: Path, args: Sequence[str]) -> list[str]:
    """``.py`` (by suffix) and shebang scripts are executed directly, everything else by bash."""
    direct = script.suffix == ".py"
    if not direct:
        try:
            fd = os.open(script, os.O_RDONLY | os.O_CLOEXEC)
            try:
                direct = os.read(fd, 2) == b"#!"
            finally:
                os.close(fd)
        except OSError:
            direct = False
    return [str(script), *args] if direct else [bash(), str(script), *args]


class _Script:
    """A running script, watched by the event loop itself: its stdout and stderr pipes are read into
    their tail buffers as data arrives, its exit is seen on a pidfd (a thread of its own waits for it
    where pidfds are missing). No asyncio transports, protocols or tasks per script: about 0.13 ms less CPU
    per spawn than ``loop.subprocess_exec`` (docs/performance.md). ``exited``: the process has exited
    (and is reaped); ``pipes_closed``: both pipes are at EOF -- a daemon started by the script may
    keep them open after the script itself exited; its output is then counted and discarded."""

    def __init__(self, proc: subprocess.Popen[bytes], pipes: dict[int, TailBuffer],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.proc = proc
        self._loop = loop
        self._pipes = pipes
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        if not pipes:
            self.pipes_closed.set_result(None)   # output goes to files
        for fd, sink in pipes.items():
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._readable, fd, sink)
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):   # no pidfds here: a thread of its own waits for the exit
            threading.Thread(target=self._wait_in_thread, name=f"script-{proc.pid}", daemon=True).start()
        else:
            loop.add_reader(pidfd, self._pidfd_readable, pidfd)

    def _wait_in_thread(self) -> None:
        """Where pidfds are missing: one thread per script (not the loop's executor, whose few threads
        long scripts would hold while the exits of short ones went unnoticed)."""
        self.proc.wait()
        with contextlib.suppress(RuntimeError):   # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._set_exited)

    def _readable(self, fd: int, sink: TailBuffer) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            sink.feed(data)
            return
        self._close_pipe(fd)

    def _close_pipe(self, fd: int) -> None:
        if self._pipes.pop(fd, None) is None:
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        if not self._pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def _pidfd_readable(self, pidfd: int) -> None:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        self.proc.poll()                # reaps it: Popen keeps its own bookkeeping right
        self._set_exited()

    def _set_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def close_pipes(self) -> None:
        for fd in list(self._pipes):
            self._close_pipe(fd)


def _popen_spooled(argv: Sequence[str], spool: journal.Spool, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` under the status wrapper with stdout and stderr on the spool's files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    fds: list[int] = []
    try:
        for path in (spool.out, spool.err, spool.status):
            fds.append(os.open(path, flags, 0o600))
        out_w, err_w, status_w = fds
        return subprocess.Popen([posix_sh(), "-c", journal.WRAPPER, "gvnfm-script", *argv],
                                stdin=status_w, stdout=out_w, stderr=err_w, **kwargs)
    finally:
        for fd in fds:
            os.close(fd)


def _popen(argv: Sequence[str], **kwargs: Any) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``argv`` with stdout and stderr on new pipes; returns the process and the read ends."""
    out_r, out_w = os.pipe()
    try:
        err_r, err_w = os.pipe()
    except BaseException:
        os.close(out_r)
        os.close(out_w)
        raise
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, **kwargs)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return proc, out_r, err_r


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
    spool = journal.CURRENT.get()
    if spool is not None and not os.access(argv[0], os.X_OK):
        spool = None   # what cannot start is answered at once (below), with nothing to journal
    try:
        if spool is not None:
            spool.write_record(timeout)   # before the fork: a restarted agent finds the process by the status file
            proc = _popen_spooled(argv, spool, cwd=cwd, env=dict(env) if env is not None else None,
                                  start_new_session=True, **kwargs)
            pipes: dict[int, TailBuffer] = {}
        else:
            proc, out_fd, err_fd = _popen(argv, cwd=cwd, env=dict(env) if env is not None else None,
                                          start_new_session=True, **kwargs)
            pipes = {out_fd: out, err_fd: err}
    except FileNotFoundError as exc:
        return ScriptResult(127, "", f"cannot execute {argv[0]}: {exc.strerror or exc}",
                            duration=time.monotonic() - started)
    except PermissionError as exc:
        return ScriptResult(126, "", f"cannot execute {argv[0]}: {exc.strerror or exc}",
                            duration=time.monotonic() - started)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return ScriptResult(126, "", f"cannot execute {argv[0]}: {exc}", duration=time.monotonic() - started)

    script = _Script(proc, pipes, asyncio.get_running_loop())
    pgid = proc.pid
    timed_out = False
    try:
        if not await _wait(script.exited, timeout):
            timed_out = True
            await _kill_group(pgid, script.exited, kill_grace)
        await _wait(script.pipes_closed, drain_grace)
    except asyncio.CancelledError:
        await _kill_group(pgid, script.exited, 0)
        script.close_pipes()
        raise
    if spool is not None:
        (stdout, out.total), (stderr, err.total) = journal.tail(spool.out, max_output), journal.tail(spool.err,
                                                                                                     max_output)
    else:
        stdout, stderr = out.text(), err.text()
    status = proc.returncode if proc.returncode is not None else -9
    if spool is not None and (wrapped := journal.read_status(spool)) is not None and not timed_out:
        status = wrapped   # the script's own status (the wrapper's is the same unless it was signalled)
    if not script.pipes_closed.done():
        # a daemon the script started holds the pipes: stop reading them (it would keep the agent busy
        # for as long as it writes); its further writes fail with EPIPE, as to a closed terminal
        script.close_pipes()
    if timed_out:
        status = TIMEOUT_STATUS
        note = f"[gvnfm-ems] script timed out after {timeout:g} s; its process group was killed"
        stderr = f"{stderr}\n{note}" if stderr else note
    return ScriptResult(status, stdout, stderr, timed_out=timed_out, duration=time.monotonic() - started,
                        stdout_bytes=out.total, stderr_bytes=err.total)
