"""One convention for every command: --version, shell completion, file arguments checked by the
CLI, errors as one line on stderr with the documented exit codes (2: usage or environment)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from gvnfm.cli.day2_cmd import FAILED, USAGE, exit_code_of
from gvnfm.cli.main import app


def test_version_and_completion() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"gvnfm {version('gvnfm')}\n"
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_a_missing_file_argument_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    for argv in (["update-script", "web", "start.sh", str(tmp_path / "nope.sh")],
                 ["execute", "web", str(tmp_path / "nope.sh")],
                 ["execute", "web", str(tmp_path)]):
        result = CliRunner().invoke(app, [*argv, "--state-dir", str(tmp_path)], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert "does not exist" in result.output or "is a directory" in result.output, result.output


def test_no_running_up_is_one_line_on_stderr_exit_2(tmp_path: Path) -> None:
    for argv in (["status"], ["status", "-o", "json"], ["ops"], ["resume", "web"], ["logs", "web", "web-1", "--runs"]):
        result = CliRunner().invoke(app, [*argv, "--state-dir", str(tmp_path)])
        assert result.exit_code == USAGE and result.stdout == "", result.output
        assert result.stderr.startswith("error: no running `gvnfm up` in ") and len(result.stderr.splitlines()) == 1


def test_a_garbled_api_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text("{not json")
    result = CliRunner().invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == USAGE and "is not the api.json of a running `gvnfm up`" in result.stderr


def test_exit_codes_of_api_answers() -> None:
    assert [exit_code_of(s) for s in (400, 401, 404, 409, 422, 500, 502)] == [
        FAILED, USAGE, USAGE, FAILED, USAGE, FAILED, FAILED]
