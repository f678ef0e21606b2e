"""Run each command at most once per key: in-flight tasks are shared, finished replies remembered.

The key is the request's ``correlation_id`` plus a digest of its body (a redelivered or re-sent
command is byte-identical; a different command that reuses a correlation id is not mistaken for it).
Finished replies live in a bounded LRU (entries and bytes) and are appended to a JSON-lines state
file (mode 0600) so an agent restart does not run them again; the file is compacted when it has
grown to twice the LRU's entries or past ``max_file_bytes`` (default twice ``max_bytes``): compaction
keeps the newest results that fit in half of that, so the file never holds much more than
``max_file_bytes`` whatever the output (binary output escapes to several bytes per byte in JSON).
Commands without a key are just executed.

Results also have an age limit (``max_age``, the agent's ``result_max_age``, default 24 h): an older
result is neither returned nor loaded from the state file, so a VNFM whose correlation ids start again
(the reference's after a restart) never gets a stale answer for a byte-identical command. A state-file
line without a time stamp (``t``) is of unknown age and dropped on load.

Executions run in tasks owned by the cache, not by the delivery that asked: a delivery whose
connection went away does not kill the script; the next delivery with the same key awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems.fileio import write_all

log = logging.getLogger(__name__)

Outcome = Literal["new", "inflight", "done", "nokey"]
DEFAULT_MAX_AGE = 24 * 3600.0


def command_key(correlation_id: str | None, body: bytes) -> str | None:
    if not correlation_id:
        return None
    return f"{correlation_id}:{hashlib.sha256(body).hexdigest()[:16]}"


def _size(reply: EmsReply) -> int:
    return len(reply.output) + len(reply.err) + 64


class ResultCache:
    def __init__(self, *, max_entries: int = 1024, max_bytes: int = 64 * 1024 * 1024,
                 state_file: str | os.PathLike[str] | None = None, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.time, max_file_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else 2 * max_bytes
        self.max_age = max_age
        self.clock = clock   # wall clock: ages must survive a restart
        self.state_file = Path(state_file) if state_file else None
        self._done: OrderedDict[str, EmsReply] = OrderedDict()
        self._stamps: dict[str, float] = {}
        self._bytes = 0
        self._inflight: dict[str, asyncio.Task[EmsReply]] = {}
        self._tasks: set[asyncio.Task[EmsReply]] = set()
        self._lines = 0
        self._file_bytes = 0
        #: called with the key once a result is remembered and persisted (the agent drops its spool)
        self.on_stored: Callable[[str], None] | None = None

    # -- finished results ------------------------------------------------------------------------
    def _expired(self, stamp: float, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) - stamp > self.max_age

    def get(self, key: str) -> EmsReply | None:
        reply = self._done.get(key)
        if reply is None:
            return None
        if self._expired(self._stamps[key]):
            self._forget(key)
            return None
        self._done.move_to_end(key)
        return reply

    def __contains__(self, key: str) -> bool:
        return key in self._done and not self._expired(self._stamps[key])

    def __len__(self) -> int:
        return len(self._done)

    def _forget(self, key: str) -> None:
        old = self._done.pop(key, None)
        self._stamps.pop(key, None)
        if old is not None:
            self._bytes -= _size(old)

    def _remember(self, key: str, reply: EmsReply, stamp: float | None = None) -> float:
        self._forget(key)
        self._done[key] = reply
        self._stamps[key] = stamp = self.clock() if stamp is None else stamp
        self._bytes += _size(reply)
        # the newest entry stays even when it alone exceeds the byte budget
        while len(self._done) > 1 and (len(self._done) > self.max_entries or self._bytes > self.max_bytes):
            evicted_key, evicted = self._done.popitem(last=False)
            self._stamps.pop(evicted_key, None)
            self._bytes -= _size(evicted)
        return stamp

    # -- state file ------------------------------------------------------------------------------
    def load(self) -> int:
        """Read the state file (bad lines are skipped, results older than ``max_age`` or without a
        time stamp dropped, and then the file rewritten without them); returns the number of results known."""
        if self.state_file is None or not self.state_file.exists():
            return len(self._done)
        now, stale = self.clock(), 0
        try:
            with open(self.state_file, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    self._lines += 1
                    try:
                        item = json.loads(line)
                        key, reply = str(item["k"]), EmsReply.model_validate(item["r"])
                        stamp = item.get("t")
                        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) \
                                or self._expired(float(stamp), now):
                            stale += 1
                            self._forget(key)   # a later stale line for a key supersedes an earlier one
                            continue
                        self._remember(key, reply, float(stamp))
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
        except OSError as exc:
            log.warning("event=ems_state_unreadable file=%s error=%r", self.state_file, str(exc))
            return len(self._done)
        with contextlib.suppress(OSError):
            self._file_bytes = self.state_file.stat().st_size
        if stale or self._file_bytes > self.max_file_bytes:
            log.info("event=ems_state_expired file=%s dropped=%d max_age=%g", self.state_file, stale, self.max_age)
            try:
                self._compact()
            except OSError as exc:
                log.warning("event=ems_state_write_failed file=%s error=%r", self.state_file, str(exc))
        return len(self._done)

    @staticmethod
    def _line(key: str, reply: EmsReply, stamp: float) -> str:
        # not ASCII-escaped: a replacement character is 3 bytes, not the 6 of ``\ufffd``
        return json.dumps({"k": key, "t": round(stamp, 3),
                           "r": {"output": reply.output, "err": reply.err, "status": reply.status}},
                          ensure_ascii=False) + "\n"

    def _append(self, key: str, reply: EmsReply, stamp: float) -> None:
        """One line, appended with a single ``write`` (O_APPEND: whole lines, in order)."""
        assert self.state_file is not None
        line = self._line(key, reply, stamp).encode()
        try:
            fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except FileNotFoundError:   # the state folder was removed under the agent
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            write_all(fd, line)
        finally:
            os.close(fd)
        self._lines += 1
        self._file_bytes += len(line)
        if self._lines > 2 * self.max_entries or self._file_bytes > self.max_file_bytes:
            self._compact()

    def _compact(self) -> None:
        assert self.state_file is not None
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        now, budget = self.clock(), self.max_file_bytes // 2
        kept: list[tuple[str, bytes]] = []
        size = 0
        for key, reply in reversed(list(self._done.items())):   # newest first, while they fit
            stamp = self._stamps.get(key)
            if stamp is None or self._expired(stamp, now):
                continue
            line = self._line(key, reply, stamp).encode()
            if kept and size + len(line) > budget:
                break
            kept.append((key, line))
            size += len(line)
        keep = {key for key, _ in kept}
        for key in [k for k in self._done if k not in keep]:
            self._forget(key)   # not in the file: not remembered either (the same after a restart)
        with os.fdopen(fd, "wb") as fh:
            for _, line in reversed(kept):
                fh.write(line)
        os.replace(tmp, self.state_file)
        self._lines, self._file_bytes = len(kept), size

    def _persist(self, key: str, reply: EmsReply, stamp: float) -> None:
        """Append the result to the state file, in the loop: a few small system calls on a local
        file (measured cheaper than a hop to a worker thread, docs/performance.md)."""
        if self.state_file is None:
            return
        try:
            self._append(key, reply, stamp)
        except OSError as exc:
            log.warning("event=ems_state_write_failed file=%s error=%r", self.state_file, str(exc))

    # -- execution ---------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[EmsReply]) -> asyncio.Task[EmsReply]:
        task: asyncio.Task[EmsReply] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, key: str | None, factory: Callable[[], Awaitable[EmsReply]]) -> tuple[EmsReply, Outcome]:
        """The reply for ``key``: the stored one, the running one (awaited) or a fresh execution."""
        if key is None:
            return await asyncio.shield(self._spawn(factory())), "nokey"
        stored = self.get(key)
        if stored is not None:
            return stored, "done"
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running), "inflight"
        return await asyncio.shield(self.adopt(key, factory)), "new"

    def adopt(self, key: str, factory: Callable[[], Awaitable[EmsReply]]) -> asyncio.Task[EmsReply]:
        """Run ``factory`` as the execution of ``key`` (a script started before a restart, or a new one):
        every request for ``key`` awaits it, and its result is remembered and persisted."""

        async def execute() -> EmsReply:
            try:
                reply = await factory()
                stamp = self._remember(key, reply)
                self._persist(key, reply, stamp)
                if self.on_stored is not None:
                    self.on_stored(key)
                return reply
            finally:
                self._inflight.pop(key, None)

        task = self._spawn(execute())
        self._inflight[key] = task
        return task

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every running execution (their scripts' process groups are killed)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
