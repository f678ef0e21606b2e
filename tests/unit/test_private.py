"""State folders 0700 and files 0600, whatever the umask and the file's rights before."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gvnfm.private import open_private_append, private_dir, private_file, write_private
from gvnfm.store.sql import open_store


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folders_and_files_are_private_even_when_they_existed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "up.log").write_text("old\n")
    os.chmod(state / "up.log", 0o644)
    assert mode(private_dir(state)) == 0o700
    with open_private_append(state / "up.log") as fh:
        fh.write("new\n")
    write_private(state / "report.json", "{}")
    assert mode(state / "up.log") == 0o600 and (state / "up.log").read_text() == "old\nnew\n"
    assert mode(state / "report.json") == 0o600 and mode(private_file(state / "x")) == 0o600


def test_private_files_are_never_written_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("keep")
    os.symlink(tmp_path / "elsewhere", tmp_path / "report.json")
    write_private(tmp_path / "report.json", "{}")     # the link is replaced by the file, never followed
    assert (tmp_path / "elsewhere").read_text() == "keep"
    assert not (tmp_path / "report.json").is_symlink() and (tmp_path / "report.json").read_text() == "{}"
    assert mode(tmp_path / "report.json") == 0o600


async def test_the_sqlite_store_is_0600(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path)
    try:
        assert mode(tmp_path / "gvnfm.db") == 0o600
    finally:
        await store.close()
