"""Find and kill every process a local host started, including daemons that left the EMS's process
group (``screen -d -m``, ``nohup ... &``, double forks): they all inherit the host's marker variable
(``GVNFM_HOST_ROOT``), which ``/proc/<pid>/environ`` shows to the same user without privileges."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARKER = "GVNFM_HOST_ROOT"


def processes_of(host_root: str | Path, proc: Path = Path("/proc"), *, under: bool = False) -> list[int]:
    """Pids whose marker is ``host_root`` (``under``: any host root inside the folder ``host_root``)."""
    needle = f"{MARKER}={host_root}".encode()
    prefix = needle.rstrip(b"/") + b"/"
    me = os.getpid()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        variables = environ.split(b"\0")
        if needle in variables or (under and any(v.startswith(prefix) for v in variables)):
            found.append(int(entry.name))
    return found


def reap(host_root: str | Path, grace: float = 1.0, *, under: bool = False) -> list[int]:
    """SIGTERM every process of the host (``under``: of every host inside that folder), SIGKILL what is
    left after ``grace`` seconds; returns the pids."""
    pids = processes_of(host_root, under=under)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in processes_of(host_root, under=under) if p in pids]
    for pid in processes_of(host_root, under=under):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
