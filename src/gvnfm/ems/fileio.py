"""Small files through their descriptors alone: the EMS's spool, result cache and scripts folder read
and write a few short files per command, and a buffered file object (``open()``) costs an ``fstat``,
an ``ioctl`` and ``lseek`` calls on top of the read or write, plus the Python objects around them."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (a short write is continued, not lost)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_tail(path: str | os.PathLike[str], limit: int) -> tuple[bytes, int]:
    """The last ``limit`` bytes of ``path`` and its size at the time of reading; ``(b"", 0)`` if it
    cannot be read (an empty file costs an open, an ``fstat`` and a close)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b"", 0
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max(1, limit))
        chunks: list[bytes] = []
        while start < size and (chunk := os.pread(fd, size - start, start)):
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks), size
    except OSError:
        return b"", 0
    finally:
        os.close(fd)
