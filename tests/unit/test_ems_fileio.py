"""The EMS's descriptor-level file helpers (ems.fileio)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gvnfm.ems.fileio import read_tail, write_all


def test_read_tail_of_an_empty_a_short_and_a_long_file(tmp_path: Path) -> None:
    empty, short, long = tmp_path / "empty", tmp_path / "short", tmp_path / "long"
    empty.write_bytes(b"")
    short.write_bytes(b"abc")
    long.write_bytes(bytes(range(256)) * 40)          # 10240 bytes
    assert read_tail(empty, 100) == (b"", 0)
    assert read_tail(short, 100) == (b"abc", 3)
    data, size = read_tail(long, 1000)
    assert size == 10240 and data == (bytes(range(256)) * 40)[-1000:]


def test_read_tail_of_what_cannot_be_read_is_empty(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "missing", 10) == (b"", 0)
    assert read_tail(tmp_path, 10) == (b"", 0)          # a folder: its read fails


def test_write_all_writes_every_byte_of_a_payload_larger_than_a_pipe() -> None:
    """1 MiB through a pipe (64 KiB of buffer) read by another thread: every byte, in order."""
    r, w = os.pipe()
    payload = os.urandom(1 << 20)                        # far more than a pipe buffer (64 KiB)
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        write_all(w, payload)
    finally:
        os.close(w)
    reader.join(10)
    os.close(r)
    assert bytes(got) == payload
