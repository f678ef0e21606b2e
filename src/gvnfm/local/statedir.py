"""The state folder of a ``gvnfm up``: one owner at a time, private to the user who runs it.

Invariants:

* a run owns its state folder by holding an exclusive ``flock`` on ``<state dir>/lock`` for its whole
  life; the kernel drops the lock when the owner dies however it dies (SIGKILL included), so "the
  lock is free" means "the previous owner is dead" and whatever it left (hosts, api.json) is stale;
* the lock's descriptor is not inherited by the hosts' processes (``os.open`` descriptors are
  non-inheritable, PEP 446): a daemon a script left running cannot keep the folder locked;
* ``lock`` holds the owner's pid (written after the lock is taken) so a refused run can name it;
* the folder is 0700 and the files holding secrets (``api.json``) are created 0600, never widened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"


class StateDirBusy(RuntimeError):
    """Another live ``gvnfm up`` owns the state folder."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        super().__init__(f"state folder {state_dir} is in use by gvnfm up, pid {pid if pid else 'unknown'}; "
                         "use --state-dir")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700 (owner only)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file, atomically (a reader sees the old or the new whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip() or "0") or None
    return None


class StateDirLock:
    """``acquire()`` takes the folder or raises ``StateDirBusy``; ``release()`` gives it back."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        private_dir(self.state_dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirBusy(self.state_dir, _read_pid(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
