"""A VM's EMS and a TLS EMS broker: what the VNFM tells it in the user-data (``ems_bootstrap``), and what
the user-data script makes of it, run by bash up to where it would start the EMS (its folders moved
into a temporary one): the CA's PEM written to a file, ``broker_cafile`` in the properties, and an EMS
configuration whose broker URL verifies with that CA. A local VIM's host gets the same from the same
user-data (``EmsLaunch.ca_to_write``), unless the VIM's own broker URL names a CA file or is plain."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from gvnfm.catalogue import userdata
from gvnfm.ems.config import load_config
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.transport.stomp import StompAddress
from gvnfm.vim.base import HostSpec, VimError
from gvnfm.vim.ems_launch import BROKER_CA_PATH, PROPERTIES_PATH, EmsLaunch
from gvnfm.vim.process import ProcessVim
from gvnfm.vnfm.operations import ems_bootstrap
from gvnfm.vnfm.settings import VnfmSettings

#: a real CA certificate (the first of certifi's bundle)
PEM = certifi.contents().split("-----END CERTIFICATE-----")[0].split("-----BEGIN CERTIFICATE-----")[1]
PEM = f"-----BEGIN CERTIFICATE-----{PEM}-----END CERTIFICATE-----\n"
NFVO_EXTENSION = {"brokerIp": "192.0.2.10", "brokerPort": "5672"}


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    path = tmp_path / "broker-ca.pem"
    path.write_text(PEM)
    return path


def _settings(tmp_path: Path, ems_broker: str) -> VnfmSettings:
    return VnfmSettings(broker="memory://", ems_broker=ems_broker, state_dir=tmp_path)


def test_a_tls_ems_broker_is_described_with_its_ca(tmp_path: Path, cafile: Path) -> None:
    stomp = ems_bootstrap(_settings(tmp_path, f"stomp+ssl://e:p@broker.example:61614/?cafile={cafile}"),
                          NFVO_EXTENSION)
    assert (stomp.broker_ip, stomp.broker_port, stomp.protocol, stomp.broker_ca) == \
        ("broker.example", 61614, "stomp+ssl", PEM)
    amqps = ems_bootstrap(_settings(tmp_path, f"amqps://e:p@broker.example/vh?cafile={cafile}"), NFVO_EXTENSION)
    assert (amqps.broker_ip, amqps.broker_port, amqps.protocol, amqps.broker_ca, amqps.virtual_host) == \
        ("broker.example", 5671, "amqps", PEM, "vh")
    # without a CA file: the system's CAs; over plain AMQP: the NFVO's broker, as the reference
    assert ems_bootstrap(_settings(tmp_path, "stomp+ssl://e:p@b/"), NFVO_EXTENSION).broker_ca == ""
    plain = ems_bootstrap(_settings(tmp_path, "amqp://e:p@b/"), NFVO_EXTENSION)
    assert (plain.broker_ip, plain.broker_port, plain.protocol, plain.broker_ca) == ("192.0.2.10", 5672, "", "")
    with pytest.raises(OSError):   # a CA file gone since the VNFM started: the operation fails, saying so
        ems_bootstrap(_settings(tmp_path, f"stomp+ssl://e:p@b/?cafile={tmp_path / 'gone.pem'}"), NFVO_EXTENSION)


def _run_until_the_ems_starts(text: str, root: Path) -> None:
    """The user-data script up to where it starts the EMS, its folders under ``root``."""
    head = text.split("if command -v systemctl")[0]
    for folder in ("/etc/openbaton", "/opt/openbaton", "/var/log/openbaton"):
        head = head.replace(folder, f"{root}{folder}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}   # gvnfm there
    done = subprocess.run(["bash", "-c", head], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("protocol, port", [("stomp+ssl", 61614), ("amqps", 5671)])
def test_the_userdata_script_gives_the_vm_ems_the_ca(tmp_path: Path, cafile: Path, protocol: str, port: int) -> None:
    boot = ems_bootstrap(_settings(tmp_path, f"{protocol}://e:p@10.0.0.5:{port}/?cafile={cafile}"), NFVO_EXTENSION)
    text = userdata.set_hostname(userdata.render(boot), "web-1234567")
    assert base64.b64decode(userdata.parse(text)["EMS_BROKER_CA"]).decode() == PEM
    root = tmp_path / "vm"
    _run_until_the_ems_starts(text, root)
    written = root / "etc/openbaton/ems-broker-ca.pem"
    assert written.read_text() == PEM and written.stat().st_mode & 0o077 == 0   # umask 077
    properties = root / "etc/openbaton/openbaton-ems.properties"
    text = properties.read_text()
    assert f"broker_cafile={written}\n" in text and f"protocol={protocol}\n" in text
    config = load_config(properties, {"root": str(tmp_path / "ems")}, environ={})
    url = config.amqp_url()
    # (the credentials are the VNFM's vnfm.ems.username/password, as the reference's user-data)
    assert url.startswith(f"{protocol}://") and f"@10.0.0.5:{port}/" in url and url.endswith(f"cafile={written}")
    if protocol == "stomp+ssl":
        assert StompAddress.parse(url).cafile == str(written)   # the file loads as the CA it is


def test_without_a_ca_the_properties_name_none(tmp_path: Path) -> None:
    boot = ems_bootstrap(_settings(tmp_path, "stomp+ssl://e:p@10.0.0.5:61614/"), NFVO_EXTENSION)
    text = userdata.set_hostname(userdata.render(boot), "web-1234567")
    root = tmp_path / "vm"
    _run_until_the_ems_starts(text, root)
    assert not (root / "etc/openbaton/ems-broker-ca.pem").exists()
    properties = (root / "etc/openbaton/openbaton-ems.properties").read_text()
    assert "broker_cafile" not in properties and "protocol=stomp+ssl\n" in properties


def _tls_userdata(tmp_path: Path, cafile: Path, protocol: str = "amqps", port: int = 5671) -> str:
    boot = ems_bootstrap(_settings(tmp_path, f"{protocol}://e:p@10.0.0.5:{port}/?cafile={cafile}"), NFVO_EXTENSION)
    return userdata.set_hostname(userdata.render(boot), "web-1234567")


def test_the_script_and_the_local_vims_write_the_ca_to_one_path(tmp_path: Path, cafile: Path) -> None:
    text = _tls_userdata(tmp_path, cafile)
    assert f"> {BROKER_CA_PATH}\n" in text and f"broker_cafile={BROKER_CA_PATH}" in text


def test_a_local_vim_takes_the_ca_unless_its_broker_url_decides(tmp_path: Path, cafile: Path) -> None:
    launch = EmsLaunch.from_userdata(_tls_userdata(tmp_path, cafile), "web-1")
    assert (launch.protocol, launch.broker_ca, launch.ca_to_write()) == ("amqps", PEM, PEM)
    assert launch.with_broker_url("amqps://u:p@127.0.0.1:5671/").ca_to_write() == PEM   # the system's CAs: no
    assert launch.with_broker_url("amqps://u:p@127.0.0.1/?cafile=/vim/ca.pem").ca_to_write() is None  # its own CA
    assert launch.with_broker_url("amqp://u:p@127.0.0.1/").ca_to_write() is None       # plain AMQP: no CA
    bad = _tls_userdata(tmp_path, cafile).replace("export EMS_BROKER_CA=", "export EMS_BROKER_CA=%%")
    with pytest.raises(VimError, match="EMS_BROKER_CA"):
        EmsLaunch.from_userdata(bad, "web-1")


@pytest.mark.parametrize("protocol, port", [("stomp+ssl", 61614), ("amqps", 5671)])
async def test_a_process_vim_host_gets_the_ca_as_the_script_gives_it(tmp_path: Path, cafile: Path, protocol: str,
                                                                     port: int) -> None:
    vim = ProcessVim(tmp_path / "vim", capacity=1, transport_factory=lambda: InMemoryTransport(InMemoryBroker()))
    try:
        host = await vim.create_host(HostSpec("web-1", "web", "ubuntu", ["mgmt"],
                                              _tls_userdata(tmp_path, cafile, protocol, port)))
        assert host.root is not None
        written = host.root / BROKER_CA_PATH.lstrip("/")
        assert written.read_text() == PEM and written.stat().st_mode & 0o077 == 0
        config = load_config(host.root / PROPERTIES_PATH.lstrip("/"), {"root": str(tmp_path / "ems")}, environ={})
        assert config.amqp_url().startswith(f"{protocol}://") and config.amqp_url().endswith(f"cafile={written}")
    finally:
        await vim.close()
