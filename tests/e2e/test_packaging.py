"""What an operator installs: the wheel in a clean venv, the systemd units, the EMS install script."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gvnfm.ems.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
GVNFM = Path(sys.executable).with_name("gvnfm")


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    wheel = next(dist.glob("gvnfm-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=900)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    version = subprocess.run([str(venv / "bin" / "gvnfm"), "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("gvnfm "), version
    props = tmp_path / "vnfm.properties"
    props.write_text("vnfm.endpoint=generic\nspring.rabbitmq.host=10.0.0.1\nspring.rabbitmq.password=pw\\=x\n")
    check = subprocess.run([str(venv / "bin" / "gvnfm"), "vnfm", "--config", str(props), "--check-config"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "10.0.0.1" in check.stdout and "pw=x" not in check.stdout and "pw%3Dx" not in check.stdout


def test_units_restart_on_failure_vnfm_is_hardened_and_unprivileged_ems_is_root() -> None:
    vnfm, ems = _unit("gvnfm-vnfm.service"), _unit("gvnfm-ems.service")
    assert vnfm["Service"]["Restart"] == "on-failure" and ems["Service"]["Restart"] == "on-failure"
    assert vnfm["Service"]["User"] == "gvnfm"
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert key in vnfm["Service"], key
    assert "User" not in ems["Service"]                                   # root, for the scripts
    assert "root ON PURPOSE" in (UNITS / "gvnfm-ems.service").read_text()
    assert "u gvnfm " in (UNITS / "gvnfm.sysusers.conf").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    for name in ("gvnfm-vnfm.service", "gvnfm-ems.service"):
        # verify checks that the binary exists: point the unit at this venv's gvnfm
        (tmp_path / name).write_text((UNITS / name).read_text().replace("/usr/local/bin/gvnfm", str(GVNFM)))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(p) for p in tmp_path.glob("*.service"))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr   # unknown keys are only warned about


def test_ems_install_script_writes_properties_the_ems_reads(tmp_path: Path) -> None:
    root = tmp_path / "image"
    env = {**os.environ, "GVNFM_SKIP_PIP": "1", "EMS_PASSWORD": "s3cr%t"}
    out = subprocess.run(["bash", str(ROOT / "packaging" / "ems" / "install-ems.sh"), "--root", str(root),
                          "--broker-ip", "10.1.2.3", "--type", "generic", "--hostname", "vm-1", "--vhost", "ob"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "s3cr" not in out.stdout + out.stderr
    props = root / "etc" / "openbaton" / "openbaton-ems.properties"
    assert props.stat().st_mode & 0o077 == 0
    cfg = load_config(props, environ={})
    assert (cfg.broker_ip, cfg.password, cfg.type, cfg.hostname, cfg.virtual_host) == (
        "10.1.2.3", "s3cr%t", "generic", "vm-1", "ob")
    assert (root / "etc" / "systemd" / "system" / "gvnfm-ems.service").read_text() == \
        (UNITS / "gvnfm-ems.service").read_text()
    image = subprocess.run(["bash", str(ROOT / "packaging" / "ems" / "install-ems.sh"), "--root",
                            str(tmp_path / "bare"), "--no-start"], capture_output=True, text=True, env=env, timeout=120)
    assert image.returncode == 0 and not (tmp_path / "bare" / "etc" / "openbaton" / "openbaton-ems.properties").exists()
