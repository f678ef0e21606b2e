"""Files and folders only their owner can read: gvnfm's state (the store holds full requests with
configuration values, the logs hold operation details, the report and ``api.json`` describe the
deployment). Invariant: a state folder is 0700 and every file gvnfm writes into it 0600, whatever the
umask, also when it existed before with wider rights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` made (with its parents) and set to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` created empty when missing (never through a symlink), set to 0600 either way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text``, the file 0600 (its folder made when missing), atomically:
    a reader sees the old or the new content whole; a symlink at ``path`` is replaced, never followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def open_private_append(path: Path) -> TextIO:
    """``path`` opened for appending (a log), 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8")
