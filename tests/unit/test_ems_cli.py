"""``gvnfm ems`` on the command line: options, configuration errors, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from gvnfm.cli.ems_cmd import register


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """test app"""

    register(a)
    return a


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app(), ["ems", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--config", "--broker-url", "--broker-ip", "--broker-port", "--username", "--password",
                   "--hostname", "--type", "--exchange", "--scripts-path", "--log-dir", "--script-timeout",
                   "--max-output", "--run-as", "--hosts", "--log-level", "--hostname-prefix", "--result-max-age"):
        assert option in result.output, option


def test_config_errors_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["ems", "--config", str(tmp_path / "missing.properties")])
    assert result.exit_code == 2 and "cannot read properties file" in result.output
    result = CliRunner().invoke(app(), ["ems", "--broker-url", "memory://x", "--hostname", "bad/name",
                                        "--root", str(tmp_path)])
    assert result.exit_code == 2 and "hostname" in result.output


def test_the_lead_app_has_the_command() -> None:
    from gvnfm.cli.main import app as main_app

    result = CliRunner().invoke(main_app, ["ems", "--help"])
    assert result.exit_code == 0 and "--hosts" in result.output


async def test_runs_until_sigterm_and_logs_to_the_log_dir(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gvnfm.ems", "--broker-url", "memory://cli", "--hostname", "cli-1", "--root",
        str(tmp_path), "--password", "not-logged-pw", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, GVNFM_EMS_EXTRA_ENV='{"TOKEN": "not-logged-token"}'))
    log_file = tmp_path / "log" / "ems-receiver.log"
    for _ in range(100):
        # no VNFM in this process's memory broker: the register queue never appears, the agent waits for it
        if log_file.exists() and "event=ems_register_waiting" in log_file.read_text():
            break
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    text = err.decode() + log_file.read_text()
    assert "event=ems_register_waiting hostname=cli-1 queue=ems.generic.register" in text
    assert "event=ems_registered" not in text and "event=ems_stopped" in text
    assert "not-logged-pw" not in text and "not-logged-token" not in text
