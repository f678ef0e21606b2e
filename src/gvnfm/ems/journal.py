"""Scripts in progress, recorded so that an agent killed while they run answers them after its restart
instead of running them again.

An EXECUTE with a key (correlation id + body digest, :func:`gvnfm.ems.dedupe.command_key`) runs
its script with a *spool*: four files ``<state_dir>/running/<digest of the key>.<suffix>`` (no folder
per spool: no mkdir and rmdir per script)

- ``.json``, the record: the key, when it started, its time limit; written once, in place, before the
  fork (a record cut by a kill then is unreadable, and an unreadable record is a script never
  started, which it is). It holds no process id;
- ``.out`` and ``.err``: the script's stdout and stderr, files rather than pipes, so the script neither
  dies of SIGPIPE with the agent nor loses output, and a restarted agent reads them;
- ``.status``: written by a small ``sh`` wrapper around the script, through a descriptor the agent
  opened (so a ``run_as`` user needs no access to the state folder; the script itself runs with that
  descriptor closed): first the wrapper's pid (``$$``, as soon as it runs: the process the agent forked,
  leader of the script's process group, since it starts a new session), then, when the script ends, its
  exit status. A restarted agent is not the script's parent and cannot wait for it: this file is how it
  learns the process to watch (and kill at the time limit) and the status.

Invariants: a spool exists from before the script can do anything until its result is stored in the
result cache (``results.jsonl``); after a restart, a spool whose key has a stored result is removed,
and any other is *adopted*: its process is watched (time limit counted from its start) and its result,
once there, answers the command and every resend of it. A command is never started twice for one key.
A spool whose result is stored is removed at once, in the agent's loop (``Journal.discard``: four
unlinks by name; a hand-off to a remover thread cost the agent more CPU than the unlinks, docs/performance.md,
twelfth round); one still there at a restart (the agent died between the two) is removed then.
A spool whose status file has no first line at a restart is one whose fork the agent's death cut, or
whose wrapper has not run yet: a process holding the status file open (the forked child, before or
after its ``exec``) is that wrapper, adopted; with none, the script never started and the spool goes.
A spool is removed record first: files of a digest without a readable record are removed at a restart.
An earlier version's spool, a folder ``running/<digest>/`` (``command.json``, with the process id once
forked, ``out``, ``err``, ``status``), is adopted or removed at a restart as one of this version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems.fileio import read_tail, write_all

log = logging.getLogger(__name__)

RUNNING_DIR = "running"
#: a spool's files in ``running/``: ``<digest of the key>.<suffix>`` (the record first)
_SUFFIXES = ("json", "out", "err", "status")
#: the files in the folder of a spool an earlier version left (``running/<digest of the key>/``)
_LEGACY_FILES = ("command.json", "out", "err", "status")
#: POSIX ``sh`` wrapper (``/bin/sh``: dash where it is, ~1 ms less per script than bash): its stdin is
#: the status file; write the wrapper's pid there, run the script (its argv) with stdin from /dev/null,
#: then write its exit status (short appends: each line whole or absent)
WRAPPER = 'echo "$$" >&0; "$@" </dev/null; s=$?; echo "$s" >&0; exit "$s"'


@dataclass
class Spool:
    """The files of one spool: ``<base>.json`` (the record), ``<base>.out``, ``<base>.err`` and
    ``<base>.status``, beside those of the other spools in ``running/``; ``legacy``: a spool an earlier
    version left, the folder ``<base>`` holding ``command.json``, ``out``, ``err`` and ``status``."""

    base: Path
    key: str
    legacy: bool = False
    record: Path = field(init=False, repr=False)
    out: Path = field(init=False, repr=False)
    err: Path = field(init=False, repr=False)
    status: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.legacy:
            self.record, self.out, self.err, self.status = (self.base / name for name in _LEGACY_FILES)
        else:
            self.record, self.out, self.err, self.status = (Path(f"{self.base}.{suffix}") for suffix in _SUFFIXES)

    def write_record(self, timeout: float | None) -> None:
        """Write the record, before the fork, in place (a record cut by a kill then is unreadable,
        and an unreadable record is a script never started, which it is); makes ``running/`` if need be."""
        data = json.dumps({"key": self.key, "started": time.time(), "timeout": timeout}).encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(self.record, flags, 0o600)
        except FileNotFoundError:
            self.record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.record, flags, 0o600)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Its files by name, the record first (a spool cut short by a kill then has none: it is removed
        at the restart); a legacy spool's folder then (anything else in it: the whole tree)."""
        for path in (self.record, self.out, self.err, self.status):
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self.legacy:
            try:
                os.rmdir(self.base)
            except FileNotFoundError:
                pass
            except OSError:
                shutil.rmtree(self.base, ignore_errors=True)


#: The spool of the command being executed in this task (set by the agent around a keyed command).
CURRENT: ContextVar[Spool | None] = ContextVar("gvnfm_ems_spool", default=None)


def tail(path: Path, limit: int) -> tuple[str, int]:
    """The last ``limit`` bytes of ``path`` as text (a cut marked as the runner marks it), and its size."""
    data, size = read_tail(path, limit)
    body = data.decode("utf-8", "replace")
    cut = size - len(data)
    return (f"[... {cut} bytes cut ...]\n{body}" if cut else body), size


class Journal:
    """The spools of one agent (``<state_dir>/running``)."""

    def __init__(self, state_dir: str | os.PathLike[str], *, max_output: int, kill_grace: float = 2.0,
                 poll: float = 0.1) -> None:
        self.root = Path(state_dir) / RUNNING_DIR
        self.max_output = max_output
        self.kill_grace = kill_grace
        self.poll = poll
        self._live: dict[str, Spool] = {}     # the spools this process made or adopted, by key

    def spool(self, key: str) -> Spool:
        return Spool(self.root / hashlib.sha256(key.encode()).hexdigest()[:32], key)

    def open(self, key: str) -> Spool:
        """The spool for a new run of ``key`` (its record makes ``running/`` if need be)."""
        spool = self._live[key] = self.spool(key)
        return spool

    def discard(self, key: str) -> None:
        """The result of ``key`` is stored: its spool (if this process made or adopted one) goes, now.
        (A new run of ``key``, a resend after its result left the cache, then starts from no files.)"""
        spool = self._live.pop(key, None)
        if spool is not None:
            spool.remove()

    def pending(self) -> list[tuple[Spool, dict[str, object]]]:
        """The spools left by a previous run of the agent, of this version (files) or an earlier one
        (folders); those without a readable record, or whose script never started, are removed."""
        found: list[tuple[Spool, dict[str, object]]] = []
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except OSError:
            return found
        bases: list[tuple[Path, bool]] = []       # (base, legacy)
        files: dict[str, list[str]] = {}          # the files in running/ by the name before their suffix
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                bases.append((Path(entry.path), True))
                continue
            name = entry.name.partition(".")[0]
            if name not in files:
                bases.append((self.root / name, False))
            files.setdefault(name, []).append(entry.path)
        for base, legacy in bases:
            try:
                record = json.loads((base / "command.json" if legacy else Path(f"{base}.json")).read_text())
                spool = Spool(base, str(record["key"]), legacy)
            except (OSError, ValueError, KeyError, TypeError):
                if legacy:
                    shutil.rmtree(base, ignore_errors=True)
                    continue
                for path in files[base.name]:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                continue
            if not isinstance(record.get("pid"), int):   # (a record of an earlier version may hold it)
                # the wrapper's first line, or the process holding its status file open (a child forked
                # as the agent died that has not written it yet); neither: the script never started
                record["pid"] = read_pid(spool) or _holder(spool.status)
                if record["pid"] is None:
                    spool.remove()
                    continue
            found.append((spool, record))
            self._live[spool.key] = spool
        return found

    async def adopt(self, spool: Spool, record: dict[str, object]) -> EmsReply:
        """The result of a script started before the agent restarted: wait for its status file (or for
        its process to be gone), kill its group at its time limit, then read its output files."""
        pid = int(record["pid"])  # type: ignore[call-overload]
        timeout = record.get("timeout")
        limit = float(timeout) + float(record["started"]) if isinstance(timeout, (int, float)) else None  # type: ignore[arg-type]
        log.info("event=ems_script_adopted pid=%d key=%s", pid, spool.key)
        timed_out = False
        while read_status(spool) is None and _alive(pid):
            if limit is not None and time.time() > limit and not timed_out:
                timed_out = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
                await asyncio.sleep(self.kill_grace)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            await asyncio.sleep(self.poll)
        status = read_status(spool)
        out, _ = tail(spool.out, self.max_output)
        err, _ = tail(spool.err, self.max_output)
        if timed_out:
            note = f"[gvnfm-ems] script timed out after {timeout:g} s; its process group was killed"  # type: ignore[str-format]
            return EmsReply(output=out, err=f"{err}\n{note}" if err else note, status=124)
        if status is None:
            note = "[gvnfm-ems] the script's process ended without an exit status while the agent was down"
            return EmsReply(output=out, err=f"{err}\n{note}" if err else note, status=-9)
        return EmsReply(output=out, err=err, status=status)


def _status_lines(spool: Spool) -> list[str]:
    """The complete lines of the status file: the wrapper's pid, then the exit status."""
    data, _ = read_tail(spool.status, 4096)   # two short lines
    return data.decode("utf-8", "replace").split("\n")[:-1]


def read_pid(spool: Spool) -> int | None:
    lines = _status_lines(spool)
    try:
        return int(lines[0]) if lines else None
    except ValueError:
        return None


def read_status(spool: Spool) -> int | None:
    lines = _status_lines(spool)
    try:
        return int(lines[1]) if len(lines) >= 2 else None
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie of ours is reaped by nobody after a restart)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _holder(path: Path) -> int | None:
    """A process (not this one) that has ``path`` open, from ``/proc`` (the same file: device and inode);
    None if none does or ``path`` is gone. Scans every process: for the rare spool without a pid line."""
    try:
        target = os.stat(path)
    except OSError:
        return None
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{name}/fd/{fd}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                return int(name)
    return None
