"""The machine-wide record of ``netns`` VIMs and hosts, for uniqueness and crash clean-up.

One JSON file per VIM (``vim-<id>.json``: owner, bridges and their subnets) and per host
(``host-<id>.json``: owner, the host's process, veths, folder) under ``/run/gvnfm/netns``
(``GVNFM_NETNS_RUN_DIR`` overrides). A record is written *before* the kernel objects it names are
created, so a crash at any point leaves enough to remove them. The owner is identified by pid and
start time (a recycled pid is not mistaken for a live owner). All changes happen under an exclusive
``flock`` of ``.lock`` (held for milliseconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gvnfm.vim.addresses import SUBNETS

DEFAULT_RUN_DIR = Path("/run/gvnfm/netns")


def run_dir_default() -> Path:
    return Path(os.environ.get("GVNFM_NETNS_RUN_DIR") or DEFAULT_RUN_DIR)


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        return cls(pid, start_time(pid))

    def alive(self) -> bool:
        now = start_time(self.pid)
        return now is not None and (self.start is None or now == self.start)


@dataclass
class VimRecord:
    id: str
    owner: ProcessId
    state_dir: str
    bridges: dict[str, dict[str, Any]] = field(default_factory=dict)  # network -> {name, index}

    kind = "vim"


@dataclass
class HostRecord:
    id: str
    vim: str
    hostname: str
    owner: ProcessId
    dir: str
    veths: list[str] = field(default_factory=list)
    proc: ProcessId | None = None

    kind = "host"


def _encode(record: VimRecord | HostRecord) -> str:
    data = asdict(record)
    data["kind"] = record.kind
    return json.dumps(data, indent=1)


def _decode(text: str) -> VimRecord | HostRecord | None:
    try:
        data = json.loads(text)
        kind = data.pop("kind")
        data["owner"] = ProcessId(**data["owner"])
        if kind == "vim":
            return VimRecord(**data)
        if kind == "host":
            if data.get("proc"):
                data["proc"] = ProcessId(**data["proc"])
            return HostRecord(**data)
    except (ValueError, KeyError, TypeError):
        return None
    return None


class Registry:
    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else run_dir_default()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Registry]:
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)

    def _path(self, record: VimRecord | HostRecord) -> Path:
        return self.run_dir / f"{record.kind}-{record.id}.json"

    def save(self, record: VimRecord | HostRecord) -> None:
        path = self._path(record)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_encode(record))
        os.replace(tmp, path)

    def delete(self, record: VimRecord | HostRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(record).unlink()

    def records(self) -> list[VimRecord | HostRecord]:
        found: list[VimRecord | HostRecord] = []
        if not self.run_dir.is_dir():
            return found
        for path in sorted(self.run_dir.glob("*.json")):
            try:
                record = _decode(path.read_text())
            except OSError:
                continue
            if record is not None:
                found.append(record)
        return found

    def vims(self) -> list[VimRecord]:
        return [r for r in self.records() if isinstance(r, VimRecord)]

    def hosts(self) -> list[HostRecord]:
        return [r for r in self.records() if isinstance(r, HostRecord)]

    def new_id(self, length: int) -> str:
        """A short hex id no record uses (call under the lock)."""
        taken = {r.id for r in self.records()}
        for _ in range(1000):
            candidate = secrets.token_hex(length // 2 + 1)[:length]
            if candidate not in taken:
                return candidate
        raise RuntimeError("no free id")  # pragma: no cover - 16^6 ids

    def free_subnet(self, extra_taken: set[int] | None = None) -> int | None:
        """The lowest /24 index that no VIM record (live or not yet cleaned) holds (under the lock)."""
        taken = set(extra_taken or ())
        for vim in self.vims():
            taken.update(int(b["index"]) for b in vim.bridges.values())
        return next((i for i in range(SUBNETS) if i not in taken), None)
