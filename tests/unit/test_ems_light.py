"""The EMS agent's entry imports only what an idle agent uses (docs/performance.md, *A light EMS*):
no pydantic, typer, rich, FastAPI, SQLAlchemy, prometheus_client or YAML until a flag needs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("pydantic", "typer", "click", "rich", "fastapi", "uvicorn", "sqlalchemy", "prometheus_client", "yaml",
         "javaproperties", "httpx")

PROBE = """
import json, sys
from gvnfm.cli.entry import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
import gvnfm.ems.agent, gvnfm.transport.amqp   # what the running agent uses on a broker
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
"""


def _modules(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_gvnfm_ems_loads_nothing_heavy(tmp_path: Path) -> None:
    props = tmp_path / "ems.properties"
    props.write_text("[ems]\nbroker_ip=127.0.0.1\nusername=u\npassword=p\nhostname=h-1\ntype=generic\n")
    props.chmod(0o600)
    loaded = _modules("ems", "--config", str(props), "--root", str(tmp_path), "--check-config")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_gvnfm_ems_help_and_errors_stay_light() -> None:
    assert not _modules("ems", "--help") & set(HEAVY)
    assert not _modules("ems", "--hosts", "0") & set(HEAVY)


def test_other_commands_still_get_the_whole_app() -> None:
    assert "typer" in _modules("--help")
