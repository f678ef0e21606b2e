"""``gvnfm vim images`` and ``gvnfm vim cleanup`` (records of dead owners, in a private run dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gvnfm.cli.main import app
from gvnfm.vim.netns_state import HostRecord, ProcessId, Registry, VimRecord, start_time


def _dead_process() -> ProcessId:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    pid = ProcessId.of(proc.pid)
    proc.wait()
    assert pid.start is not None and not pid.alive()
    return pid


def test_vim_images_lists_every_image() -> None:
    result = CliRunner().invoke(app, ["vim", "images"])
    assert result.exit_code == 0, result.output
    assert "default" in result.output and "ubuntu*" in result.output and "bare" in result.output
    assert "apt-get" in result.output and "sudo" in result.output


def test_vim_cleanup_removes_records_of_dead_owners_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    registry = Registry(run_dir)
    dead = _dead_process()
    alive = ProcessId.of(os.getpid())
    host_dir = tmp_path / "state/hosts/ghost-1"
    (host_dir / "upper/etc").mkdir(parents=True)
    with registry.locked():
        registry.save(VimRecord(id="d0d0d0", owner=dead, state_dir=str(tmp_path / "state"),
                                bridges={"lan": {"name": "gvd0d0d0b0", "index": 500}}))
        registry.save(HostRecord(id="a1a1a1", vim="d0d0d0", hostname="ghost-1", owner=dead, dir=str(host_dir),
                                 veths=["gva1a1a1v0"], proc=dead))
        registry.save(VimRecord(id="e1e1e1", owner=alive, state_dir=str(tmp_path / "other")))
    result = CliRunner().invoke(app, ["vim", "cleanup", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "removed host ghost-1 (gva1a1a1" in result.output
    assert "removed vim gvd0d0d0" in result.output
    assert not host_dir.exists()
    assert [r.id for r in registry.records()] == ["e1e1e1"]      # a live owner's record stays
    again = CliRunner().invoke(app, ["vim", "cleanup", "--run-dir", str(run_dir)])
    assert again.exit_code == 0 and "nothing to clean up" in again.output


def test_start_time_tells_a_recycled_pid_apart() -> None:
    me = ProcessId.of(os.getpid())
    assert me.alive() and me.start == start_time(me.pid)
    assert not ProcessId(me.pid, (me.start or 0) + 1).alive()
    assert not ProcessId(2**22 + 12345, None).alive()
