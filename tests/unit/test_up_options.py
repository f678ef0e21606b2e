"""``gvnfm up``'s VNFM settings: its options, GVNFM_* environment variables (read as ``gvnfm vnfm``
reads them), the local defaults, and the orchestrator's reply timeout that follows the operation
deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gvnfm.cli import up_cmd
from gvnfm.cli.main import app
from gvnfm.local.runtime import REPLY_MARGIN, LocalRuntime, RuntimeOptions, vnfm_settings


def test_defaults_environment_and_options(tmp_path: Path) -> None:
    s = vnfm_settings(RuntimeOptions(state_dir=tmp_path, environ={}), tmp_path, "guest", "pw")
    assert (s.ems_start_timeout, s.script_timeout, s.operation_timeout, s.script_log_minutes) == (120, 1800, 7200, 180)
    assert (s.ems_username, s.ems_password, s.register_pause, s.broker) == ("guest", "pw", 0.2, "memory://")
    env = {"GVNFM_EMS_START_TIMEOUT": "30", "GVNFM_SCRIPT_TIMEOUT": "60", "GVNFM_OPERATION_TIMEOUT": "600",
           "GVNFM_SCRIPT_LOG_MINUTES": "5", "GVNFM_CONSUMERS": "4", "GVNFM_EMS_USERNAME": "ems",
           "GVNFM_BROKER": "amqp://elsewhere/"}
    s = vnfm_settings(RuntimeOptions(state_dir=tmp_path, environ=env), tmp_path, "guest", "pw")
    assert (s.ems_start_timeout, s.script_timeout, s.operation_timeout, s.script_log_minutes) == (30, 60, 600, 5)
    assert (s.consumers, s.ems_username, s.ems_password) == (4, "ems", "pw")
    assert s.broker == "memory://"          # the broker is the local deployment's own
    s = vnfm_settings(RuntimeOptions(state_dir=tmp_path, environ=env, script_timeout=9, ems_start_timeout=8,
                                     operation_timeout=7, script_log_minutes=0), tmp_path, "guest", "pw")
    assert (s.ems_start_timeout, s.script_timeout, s.operation_timeout, s.script_log_minutes) == (8, 9, 7, 0)


def test_up_options_reach_the_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_up(path: Path, *, options: RuntimeOptions, **_kw: Any) -> int:
        seen["options"] = options
        return 0

    monkeypatch.setattr(up_cmd, "run_up", fake_run_up)
    monkeypatch.setattr(up_cmd, "setup_logging", lambda *_a, **_kw: None)   # leave this process's logging alone
    result = CliRunner().invoke(app, ["up", str(tmp_path), "--state-dir", str(tmp_path / "s"),
                                      "--ems-start-timeout", "11", "--operation-timeout", "22",
                                      "--script-timeout", "33", "--script-log-minutes", "44"])
    assert result.exit_code == 0, result.output
    o = seen["options"]
    assert (o.ems_start_timeout, o.operation_timeout, o.script_timeout, o.script_log_minutes) == (11, 22, 33, 44)
    assert o.concurrency is None                # not given: GVNFM_CONCURRENCY or the default
    help_text = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--ems-start-timeout", "--operation-timeout", "--script-timeout", "--script-log-minutes",
                 "GVNFM_SCRIPT_TIMEOUT"):
        assert flag in help_text


async def test_runtime_uses_the_settings(tmp_path: Path) -> None:
    rt = LocalRuntime(RuntimeOptions(state_dir=tmp_path, environ={"GVNFM_OPERATION_TIMEOUT": "50",
                                                                  "GVNFM_SCRIPT_TIMEOUT": "5"}))
    await rt.start()
    try:
        assert rt.vnfm is not None and rt.nfvo is not None
        assert rt.vnfm.settings.script_timeout == 5 and rt.vnfm.settings.operation_timeout == 50
        assert rt.nfvo.reply_timeout == 50 + REPLY_MARGIN
    finally:
        await rt.close()
