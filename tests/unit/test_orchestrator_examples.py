"""The chain example's scripts, run with bash as the EMS runs them: they accept what the VNFM sends and
fail (exit 1, clear stderr) on anything missing or wrong."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CHAIN = Path(__file__).resolve().parents[2] / "examples" / "chain"


def run(vnf: str, script: str, root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GVNFM_HOST_ROOT": str(root), **env}
    return subprocess.run(["/bin/bash", str(CHAIN / vnf / "scripts" / script)], env=full, capture_output=True,
                          text=True, timeout=30)


DB = {"hostname": "db-1234567", "private": "10.0.0.2", "port": "5432", "schema": "orders"}
APP = {"hostname": "app-7654321", "private": "10.0.0.3", "port": "8080", "workers": "2"}
WEB = {"hostname": "web-1111111", "private": "10.0.0.5", "port": "8000", "expected_backends": "2"}


def test_db_lifecycle(tmp_path: Path) -> None:
    out = run("db", "install.sh", tmp_path, **DB)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "install.sh on db-1234567: installed schema 'orders', will listen on 10.0.0.2:5432"
    assert run("db", "start.sh", tmp_path, **DB).returncode == 0
    assert (tmp_path / "var/lib/chain/db.running").is_file()
    assert run("db", "stop.sh", tmp_path, **DB).returncode == 0
    assert run("db", "terminate.sh", tmp_path, **DB).returncode == 0
    assert not (tmp_path / "var/lib/chain").exists()


@pytest.mark.parametrize("env,message", [
    ({**DB, "port": "5433"}, "install.sh on db-1234567: $port is '5433', expected '5432'"),
    ({k: v for k, v in DB.items() if k != "schema"}, "install.sh on db-1234567: variable $schema is missing"),
    ({**DB, "private": ""}, "install.sh on db-1234567: variable $private is empty"),
    ({**DB, "private": "10.0.0"}, "install.sh on db-1234567: $private is '10.0.0', not an IPv4 address"),
    ({**DB, "hostname": "app-1234567"}, "install.sh on app-1234567: $hostname is 'app-1234567', expected a "
                                        "hostname starting with 'db-'"),
    ({**DB, "app_private": "10.0.0.9"}, "install.sh on db-1234567: variable $app_private is set ('10.0.0.9') but "
                                        "must not be here"),
])
def test_db_install_refuses_wrong_input(tmp_path: Path, env: dict[str, str], message: str) -> None:
    out = run("db", "install.sh", tmp_path, **env)
    assert out.returncode == 1
    assert out.stderr.strip() == message
    assert out.stdout == ""


def test_app_needs_configure_before_start(tmp_path: Path) -> None:
    assert run("app", "install.sh", tmp_path, **APP).returncode == 0
    early = run("app", "start.sh", tmp_path, **APP)
    assert early.returncode == 1
    assert "db.conf is missing: CONFIGURE (db_configure.sh) did not run before START" in early.stderr
    dep = {"db_private": "10.0.0.2", "db_hostname": "db-1234567", "db_port": "5432", "db_schema": "orders"}
    conf = run("app", "db_configure.sh", tmp_path, **APP, **dep)
    assert conf.returncode == 0, conf.stderr
    assert conf.stdout.strip() == ("db_configure.sh on app-7654321: database is db-1234567 at 10.0.0.2:5432, "
                                   "schema orders")
    wrong = run("app", "db_configure.sh", tmp_path, **APP, **{**dep, "db_hostname": "web-1"})
    assert wrong.returncode == 1 and "$db_hostname is 'web-1', expected a hostname starting with 'db-'" in wrong.stderr
    started = run("app", "start.sh", tmp_path, **APP)
    assert started.returncode == 0, started.stderr
    assert "db=db-1234567 10.0.0.2:5432/orders" in started.stdout


def test_web_counts_backends_and_scales_in(tmp_path: Path) -> None:
    assert run("web", "install.sh", tmp_path, **WEB).returncode == 0
    for i, host in enumerate(["app-1000001", "app-1000002", "app-1000001"]):   # a repeat replaces, not adds
        out = run("web", "app_configure.sh", tmp_path, **WEB, app_private=f"10.0.1.{i}", app_hostname=host,
                  app_port="8080")
        assert out.returncode == 0, out.stderr
    backends = (tmp_path / "var/lib/chain/backends").read_text().splitlines()
    assert backends == ["app-1000002 10.0.1.1:8080", "app-1000001 10.0.1.2:8080"]
    assert run("web", "start.sh", tmp_path, **WEB).returncode == 0
    out = run("web", "scale_in.sh", tmp_path, **WEB, removing_hostname="app-1000002", removing_private="10.0.1.1")
    assert out.returncode == 0, out.stderr
    assert "backend app-1000002 removed (1 left)" in out.stdout
    gone = run("web", "scale_in.sh", tmp_path, **WEB, removing_hostname="app-1000002", removing_private="10.0.1.1")
    assert gone.returncode == 1 and "app-1000002 is not a configured backend" in gone.stderr


def test_web_configure_refuses_an_overlapping_run(tmp_path: Path) -> None:
    assert run("web", "install.sh", tmp_path, **WEB).returncode == 0
    lock = tmp_path / "var/lib/chain/configure.lock"
    lock.mkdir()
    (lock / "owner").write_text("app-1000001\n")
    out = run("web", "app_configure.sh", tmp_path, **WEB, app_private="10.0.1.2", app_hostname="app-1000002",
              app_port="8080")
    assert out.returncode == 1
    assert ("another app_configure.sh run (for app-1000001) is in progress on this VNFC: the runs for app-1000002 "
            "and it overlap, they must run one after the other") in out.stderr
    assert (tmp_path / "var/lib/chain/backends").read_text() == ""
    lock.joinpath("owner").unlink()
    lock.rmdir()
    ok = run("web", "app_configure.sh", tmp_path, **WEB, app_private="10.0.1.2", app_hostname="app-1000002",
             app_port="8080")
    assert ok.returncode == 0, ok.stderr
    assert not lock.exists()                        # released when the run ends


def test_web_start_fails_with_too_few_backends(tmp_path: Path) -> None:
    assert run("web", "install.sh", tmp_path, **WEB).returncode == 0
    run("web", "app_configure.sh", tmp_path, **WEB, app_private="10.0.1.1", app_hostname="app-1000001",
        app_port="8080")
    out = run("web", "start.sh", tmp_path, **WEB)
    assert out.returncode == 1
    assert "1 backend(s) configured, expected at least 2" in out.stderr


def test_every_referenced_script_exists_and_is_bash() -> None:
    import json

    for vnf in ("db", "app", "web"):
        vnfd = json.loads((CHAIN / vnf / "vnfd.json").read_text())
        for le in vnfd["lifecycle_event"]:
            for entry in le["lifecycle_events"]:
                path = CHAIN / vnf / "scripts" / entry.split()[0]
                assert path.read_text().startswith("#!/bin/bash\n")
                check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10)
                assert check.returncode == 0, check.stderr
