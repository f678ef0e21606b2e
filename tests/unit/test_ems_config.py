"""EMS configuration: the reference properties file, environment and flag overrides, URLs, roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from gvnfm.ems.config import ConfigError, EmsConfig, from_env, load_config, load_properties

# What the reference user-data script writes (GVRES/user-data.sh:113-126), values filled in.
REFERENCE_PROPERTIES = """\
[ems]
broker_ip=192.168.161.4
broker_port=5673
username=admin
password=pa%ss:w@rd/x
exchange=openbaton-exchange
heartbeat=120
autodelete=true
type=generic
hostname=iperf-server-1234567
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "openbaton-ems.properties"
    path.write_text(text)
    return path


def test_reference_properties_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, REFERENCE_PROPERTIES), environ={})
    assert (cfg.broker_ip, cfg.broker_port, cfg.username, cfg.password) == (
        "192.168.161.4", 5673, "admin", "pa%ss:w@rd/x")
    assert (cfg.exchange, cfg.heartbeat, cfg.autodelete, cfg.type, cfg.hostname) == (
        "openbaton-exchange", 120, True, "generic", "iperf-server-1234567")
    assert cfg.virtual_host == "/"  # not in the file: the reference default
    assert cfg.actions_queue == "vnfm.iperf-server-1234567.actions"
    assert cfg.register_queue == "ems.generic.register"
    # user and password are URL-quoted, the vhost "/" is %2F
    assert cfg.amqp_url() == "amqp://admin:pa%25ss%3Aw%40rd%2Fx@192.168.161.4:5673/%2F?heartbeat=120"


def test_defaults_of_the_reference(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[ems]\nbroker_ip=10.0.0.1\nhostname=h-1\n"), environ={})
    assert (cfg.broker_port, cfg.type, cfg.exchange, cfg.heartbeat, cfg.virtual_host, cfg.autodelete) == (
        5672, "generic", "openbaton-exchange", 60, "/", True)
    assert cfg.scripts_path == "/opt/openbaton/scripts"
    assert cfg.log_dir == "/var/log/openbaton"
    assert (cfg.script_timeout, cfg.max_output_bytes, cfg.prefetch, cfg.run_as) == (1800.0, 1024 * 1024, 16, None)
    assert cfg.result_max_age == 24 * 3600


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("FALSE", False), ("true", True),
                                                 ("no", True), ("0", True), ("", True)])
def test_autodelete_only_literal_false_disables(tmp_path: Path, value: str, expected: bool) -> None:
    cfg = load_config(write(tmp_path, f"[ems]\nhostname=h-1\nautodelete={value}\n"), environ={})
    assert cfg.autodelete is expected


def test_merge_order_file_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, REFERENCE_PROPERTIES)
    env = {"GVNFM_EMS_HOSTNAME": "from-env-1", "GVNFM_EMS_BROKER_PORT": "6000", "GVNFM_EMS_TYPE": "envtype",
           "GVNFM_EMS_UNKNOWN": "x", "OTHER": "y"}
    assert from_env(env) == {"hostname": "from-env-1", "broker_port": "6000", "type": "envtype"}
    cfg = load_config(path, {"type": "flagtype", "username": None}, environ=env)
    assert cfg.hostname == "from-env-1"      # env beats the file
    assert cfg.broker_port == 6000
    assert cfg.type == "flagtype"            # flags beat env
    assert cfg.username == "admin"           # a None flag does not override


def test_broker_url_overrides_and_extras_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, REFERENCE_PROPERTIES + "broker_url=memory://x\nscript_timeout=5\n"
                 'extra_env={"PATH": "/shim:/usr/bin"}\n')
    cfg = load_config(path, environ={})
    assert cfg.amqp_url() == "memory://x"
    assert cfg.script_timeout == 5
    assert cfg.extra_env == {"PATH": "/shim:/usr/bin"}
    assert load_config(write(tmp_path, "[ems]\nresult_max_age=600\n"), environ={}).result_max_age == 600
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "[ems]\nresult_max_age=0\n"), environ={})


def test_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'brokerip' \(did you mean 'broker_ip'\?\)"):
        load_config(write(tmp_path, REFERENCE_PROPERTIES + "brokerip=10.0.0.1\n"), environ={})


def test_missing_or_bad_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.properties", environ={})
    with pytest.raises(ConfigError, match=r"no \[ems\] section"):
        load_properties(write(tmp_path, "[other]\na=b\n"))
    with pytest.raises(ConfigError, match="broker_port"):
        load_config(write(tmp_path, "[ems]\nhostname=h\nbroker_port=notanumber\n"), environ={})
    with pytest.raises(ConfigError, match="hostname"):
        load_config(write(tmp_path, "[ems]\nhostname=a/b\n"), environ={})


def test_root_puts_relative_defaults_below_it(tmp_path: Path) -> None:
    cfg = EmsConfig(hostname="h-1", root=str(tmp_path), log_dir="logs", state_dir="/abs/state")
    assert cfg.scripts_path == str(tmp_path / "scripts")
    assert cfg.log_dir == str(tmp_path / "logs")
    assert cfg.state_dir == "/abs/state"


def test_for_host_gives_each_agent_its_folders(tmp_path: Path) -> None:
    base = EmsConfig(hostname="bench", root=str(tmp_path), extra_env={"A": "1"})
    one = base.for_host("bench-1")
    assert one.hostname == "bench-1"
    assert one.scripts_path == str(tmp_path / "bench-1" / "scripts")
    assert one.state_dir == str(tmp_path / "bench-1" / "state")
    assert one.extra_env == {"A": "1"}
    plain = EmsConfig(hostname="b", scripts_path=str(tmp_path / "s"), state_dir=str(tmp_path / "st"))
    assert plain.for_host("b-2").scripts_path == str(tmp_path / "s" / "b-2")
    assert plain.for_host("b-2").state_dir == str(tmp_path / "st" / "b-2")


def test_redacted_hides_secrets() -> None:
    cfg = EmsConfig(hostname="h", password="hunter2", broker_url="amqp://u:hunter2@x/",
                    extra_env={"TOKEN": "t0ps3cret"})
    text = repr(cfg.redacted())
    assert "hunter2" not in text and "t0ps3cret" not in text
    assert "TOKEN" in text


def test_values_are_checked_and_named() -> None:
    for bad, field in (({"prefetch": 0}, "prefetch"), ({"script_timeout": "soon"}, "script_timeout"),
                       ({"broker_port": 70000}, "broker_port"), ({"max_output_bytes": 10}, "max_output_bytes"),
                       ({"extra_env": "[1]"}, "extra_env"), ({"heartbeat": 1.5}, "heartbeat")):
        with pytest.raises(ConfigError, match=field):
            EmsConfig(hostname="h", **bad)
    cfg = EmsConfig(hostname="h", prefetch="4", script_timeout="2.5", run_as=" ", allowed_script_roots="/a,/b")
    assert (cfg.prefetch, cfg.script_timeout, cfg.run_as, cfg.allowed_script_roots) == (4, 2.5, None, ["/a", "/b"])
    assert "hunter2" not in repr(EmsConfig(hostname="h", password="hunter2"))   # not in the repr


def test_unknown_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(None, {"no_such_key": "x"}, environ={})
