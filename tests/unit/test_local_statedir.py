"""The state folder: one owner (the lock), private modes, and who may call the control API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gvnfm.api.server import is_authorized
from gvnfm.local.statedir import StateDirBusy, StateDirLock, private_dir, write_private


def test_one_owner_at_a_time_and_the_refusal_names_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = StateDirLock(state)
    first.acquire()
    assert (state / "lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateDirBusy) as refused:      # another open file description: refused as another process
        StateDirLock(state).acquire()
    assert str(refused.value) == f"state folder {state} is in use by gvnfm up, pid {os.getpid()}; use --state-dir"
    first.release()
    with StateDirLock(state) as second:               # free again
        assert second.held
    assert state.stat().st_mode & 0o777 == 0o700


def test_private_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    private_dir(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    old_umask = os.umask(0)
    try:
        write_private(folder / "api.json", "{}")
        write_private(folder / "api.json", '{"token": "t"}')
    finally:
        os.umask(old_umask)
    assert (folder / "api.json").stat().st_mode & 0o777 == 0o600
    assert (folder / "api.json").read_text() == '{"token": "t"}'
    assert [p.name for p in folder.iterdir()] == ["api.json"]       # no temporary file left


@pytest.mark.parametrize("path,header,allowed", [
    ("/healthz", None, True),
    ("/docs", None, True),
    ("/openapi.json", None, True),
    ("/docs/assets/swagger-ui.css", None, True),
    ("/docs/assets/../../api/v1/ns-records", None, False),
    ("/api/v1/ns-records", None, False),
    ("/api/v1/ns-records", "Bearer tok", True),
    ("/api/v1/ns-records", "bearer tok", True),
    ("/api/v1/ns-records", "Bearer tok2", False),
    ("/api/v1/ns-records", "tok", False),
    ("/api/v1/ns-records", "Basic tok", False),
    ("/metrics", None, False),
])
def test_who_may_call_the_control_api(path: str, header: str | None, allowed: bool) -> None:
    assert is_authorized(path, header, "tok") is allowed
