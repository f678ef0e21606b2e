"""Configuration as an operator meets it: Java properties read as Java reads them, ${...} resolved or
refused, unknown keys refused with a suggestion, reference-only keys named once, --check-config."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from gvnfm.configfile import ConfigFileError, resolve_value
from gvnfm.vnfm.settings import load_settings


def _props(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vnfm.properties"
    path.write_bytes(text.encode("latin-1"))
    return path


def test_java_escapes_continuations_separators_and_unicode(tmp_path: Path) -> None:
    props = _props(tmp_path, "spring.rabbitmq.host 10.0.0.9\n"
                             "spring.rabbitmq.username:ob\\u00e9\n"
                             "spring.rabbitmq.password=gu\\=est\n"
                             "vnfm.description = first \\\n      second\n"
                             "vnfm.endpoint=gen\\\n  eric\n")
    s = load_settings(props, environ={})
    assert s.broker == "amqp://ob%C3%A9:gu%3Dest@10.0.0.9:5672/%2F"
    assert s.description == "first second" and s.endpoint == "generic"


def test_placeholders_env_first_then_other_keys_then_default(tmp_path: Path) -> None:
    props = _props(tmp_path, "rabbitmq.host=10.1.1.1\nrabbitmq.username=admin\n"
                             "spring.rabbitmq.host=${rabbitmq.host}\n"
                             "vnfm.ems.username=${rabbitmq.username}\n"
                             "vnfm.ems.password=${rabbitmq.password:openbaton}\n"
                             "spring.rabbitmq.username=${vnfm.ems.username}\n")
    s = load_settings(props, environ={"RABBITMQ_HOST": "10.9.9.9"})
    assert "@10.9.9.9:5672" in s.broker                         # the environment wins over the key
    assert s.ems_username == "admin" and s.ems_password == "openbaton"
    assert s.broker.startswith("amqp://admin:")                 # a key through another key
    assert "${" not in repr(s.model_dump())


def test_an_unresolvable_placeholder_is_refused_by_name(tmp_path: Path) -> None:
    props = _props(tmp_path, "vnfm.ems.password=${rabbitmq.password}\n")
    with pytest.raises(ConfigFileError) as err:
        load_settings(props, environ={})
    text = str(err.value)
    assert "vnfm.ems.password" in text and "${rabbitmq.password}" in text and "RABBITMQ_PASSWORD" in text
    with pytest.raises(ConfigFileError, match="loop"):
        resolve_value("a", {"a": "${b}", "b": "${a}"}, {})
    with pytest.raises(ConfigFileError, match="unterminated"):
        resolve_value("a", {"a": "${b"}, {})


def test_placeholders_of_ignored_keys_are_left_alone(tmp_path: Path) -> None:
    props = _props(tmp_path, "logging.file=${LOG_PATH}/vnfm.log\nvnfm.endpoint=generic\n")
    assert load_settings(props, environ={}).endpoint == "generic"


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    props = _props(tmp_path, "vnfm.endpont=generic\n")
    with pytest.raises(ConfigFileError) as err:
        load_settings(props, environ={})
    assert "unknown key 'vnfm.endpont'" in str(err.value) and "did you mean 'vnfm.endpoint'" in str(err.value)


def test_reference_keys_gvnfm_ignores_get_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    props = _props(tmp_path, "vnfm.endpoint.type=RABBIT\nvnfm.rabbitmq.exclusive=false\n"
                             "spring.datasource.url=jdbc:derby:x\nlogging.level.org.openbaton=DEBUG\n")
    with caplog.at_level(logging.WARNING):
        load_settings(props, environ={})
    lines = [r.getMessage() for r in caplog.records if "config_keys_ignored" in r.getMessage()]
    assert len(lines) == 1
    for key in ("vnfm.endpoint.type", "vnfm.rabbitmq.exclusive", "spring.datasource.url",
                "logging.level.org.openbaton"):
        assert key in lines[0]


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    props = _props(tmp_path, "vnfm.endpoint=from-file\nvnfm.type=from-file\nvnfm.description=from-file\n")
    s = load_settings(props, {"type": "from-flag"}, environ={"GVNFM_ENDPOINT": "from-env",
                                                              "GVNFM_TYPE": "from-env"})
    assert (s.description, s.endpoint, s.type) == ("from-file", "from-env", "from-flag")


def _gvnfm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gvnfm.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_check_config_prints_effective_settings_masked(tmp_path: Path) -> None:
    props = _props(tmp_path, "spring.rabbitmq.host=10.0.0.5\nspring.rabbitmq.username=ob\n"
                             "spring.rabbitmq.password=s3cr\\=t\nvnfm.ems.password=ems-s3cret\n"
                             "vnfm.http.listen=127.0.0.1:9102\n")
    env = {"PATH": "/usr/bin:/bin", "GVNFM_ENDPOINT": "from-env"}
    out = _gvnfm("vnfm", "--config", str(props), "--type", "flagtype", "--check-config", env=env)
    assert out.returncode == 0, out.stderr
    assert "s3cr" not in out.stdout and "ems-s3cret" not in out.stdout
    lines = {ln.split("=", 1)[0].strip(): ln.split("=", 1)[1] for ln in out.stdout.splitlines()}
    assert lines["broker"].strip().startswith("amqp://ob:***@10.0.0.5:5672")
    assert lines["ems_password"].strip().startswith("***")
    assert "from-env" in lines["endpoint"] and "env GVNFM_ENDPOINT" in lines["endpoint"]
    assert "flagtype" in lines["type"] and "# flag" in lines["type"]
    assert "127.0.0.1:9102" in lines["http_listen"]


def test_check_config_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    props = _props(tmp_path, "vnfm.endpont=x\n")
    out = _gvnfm("vnfm", "--config", str(props), "--check-config")
    assert out.returncode == 2 and "did you mean 'vnfm.endpoint'" in out.stderr
    props.write_text("vnfm.ems.start.timeout=soon\n")
    out = _gvnfm("vnfm", "--config", str(props), "--check-config")
    assert out.returncode == 2 and "ems_start_timeout" in out.stderr


def test_ems_check_config_masks_and_refuses_unknown_keys(tmp_path: Path) -> None:
    props = tmp_path / "openbaton-ems.properties"
    props.write_text("[ems]\nbroker_ip=10.0.0.7\nusername=admin\npassword=em%s3cret\ntype=generic\nhostname=vm-1\n")
    props.chmod(0o600)
    out = _gvnfm("ems", "--config", str(props), "--check-config")
    assert out.returncode == 0, out.stderr
    assert "em%s3cret" not in out.stdout + out.stderr and "10.0.0.7" in out.stdout and "vm-1" in out.stdout
    props.write_text("[ems]\nbroker_ip=10.0.0.7\nhost_name=vm-1\n")
    out = _gvnfm("ems", "--config", str(props), "--check-config")
    assert out.returncode == 2 and "did you mean 'hostname'" in out.stderr
