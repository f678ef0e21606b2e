"""docs/writing-a-network-service.md is true: its files are extracted, validated and deployed with
`gvnfm up --once`, each script's output is what the guide says it gets, and every command it shows
exists with the options it uses."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gvnfm.cli.main import app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "writing-a-network-service.md"
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def blocks(marker: str) -> list[tuple[str, str]]:
    """(marker argument, block text) of every fenced block right after ``<!-- marker[: arg] -->``."""
    text = GUIDE.read_text()
    out = []
    for m in re.finditer(rf"<!-- {marker}(?:: (\S+))? -->\n", text):
        fence = FENCE.match(text, m.end())
        assert fence is not None, f"no code block after {m.group(0)!r}"
        out.append((m.group(1) or "", fence.group(1)))
    return out


def extract(into: Path) -> Path:
    files = blocks("file")
    assert len(files) >= 6
    for name, body in files:
        path = into / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        if path.suffix == ".sh":
            path.chmod(0o755)
    return into / "hello"


def runs_of(report: dict[str, Any], vnf: str) -> dict[str, list[tuple[str, str, int, str]]]:
    vnfr = next(v for v in report["vnfrs"] if v["name"] == vnf)
    return {c["hostname"]: [(s["event"], s["script"], s["exit_status"], s["stdout"].strip()) for s in c["scripts"]]
            for c in vnfr["vnfc"]}


def test_the_guides_service_validates_and_deploys(tmp_path: Path) -> None:
    hello = extract(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(hello)])
    assert result.exit_code == 0 and "no problem found" in result.output, result.output

    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "gvnfm.cli.main", "up", str(hello), "--once", "--plain",
                           "--api-port", "-1", "--state-dir", str(tmp_path / "state"), "--report", str(report)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    (store_host, store_runs), = runs_of(data, "store").items()
    (web_host, web_runs), = runs_of(data, "web").items()
    store_ip = next(c["ips"]["private"] for v in data["vnfrs"] for c in v["vnfc"] if c["hostname"] == store_host)
    web_ip = next(c["ips"]["private"] for v in data["vnfrs"] for c in v["vnfc"] if c["hostname"] == web_host)
    assert store_runs == [
        ("INSTANTIATE", "install.sh", 0, f"install on {store_host}: address {store_ip}, port 6379"),
        ("TERMINATE", "goodbye.sh", 0, f"{store_host} going away")]
    assert web_runs == [
        ("INSTANTIATE", "install.sh", 0, f"install on {web_host}: address {web_ip}, port 8080"),
        ("CONFIGURE", "kv_configure.sh", 0, f"{web_host} uses store {store_host} at {store_ip}:6379"),
        ("CONFIGURE", "summary.sh", 0, f"stores of {web_host}: {store_host} (port 6379)"),
        ("START", "start.sh", 0, f"web on {web_host} started"),
        ("TERMINATE", "goodbye.sh", 0, f"{web_host} going away")]


def test_the_guides_commands_exist() -> None:
    commands = [line[2:] for _, body in blocks("commands") for line in body.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 8
    runner = CliRunner()
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "gvnfm", command
        result = runner.invoke(app, [*argv[1:], "--help"], env={**os.environ, "COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
