"""Address plans and the EMS launch settings of the local VIMs."""

from __future__ import annotations

import configparser
import ipaddress
from pathlib import Path

import pytest

from gvnfm.catalogue.userdata import EmsBootstrap, render, set_hostname
from gvnfm.ems.config import load_config
from gvnfm.vim.addresses import BENCHMARK_NET, SUBNETS, LoopbackPlan, SubnetHosts, gateway, loopback, subnet
from gvnfm.vim.base import VimError
from gvnfm.vim.ems_launch import EmsLaunch


def test_loopback_plan_unique_per_host_and_link() -> None:
    plan = LoopbackPlan()
    a = plan.allocate("a-1", ["mgmt", "data"])
    b = plan.allocate("b-2", ["mgmt"])
    c = plan.allocate("c-3", ["data", "mgmt"])
    every = [*a.values(), *b.values(), *c.values()]
    assert len(set(every)) == len(every) == 5
    for address in every:
        ip = ipaddress.IPv4Address(address)
        assert ip in ipaddress.IPv4Network("127.0.0.0/8")
        assert address.split(".")[1] != "0"          # clear of 127.0.0.1 / 127.0.1.1
    # one /16 per link
    assert {a["mgmt"].split(".")[1], b["mgmt"].split(".")[1], c["mgmt"].split(".")[1]} == {"1"}
    assert {a["data"].split(".")[1], c["data"].split(".")[1]} == {"2"}
    plan.release("b-2")
    d = plan.allocate("d-4", ["mgmt"])
    assert d["mgmt"] == b["mgmt"]                         # freed addresses are reused
    assert d["mgmt"] not in (a["mgmt"], c["mgmt"])


def test_loopback_numbering_skips_network_and_broadcast_octets() -> None:
    assert loopback(1, 1) == "127.1.0.2"
    assert loopback(1, 253) == "127.1.0.254"
    assert loopback(1, 254) == "127.1.1.1"
    with pytest.raises(ValueError):
        loopback(0, 1)


def test_benchmark_subnets() -> None:
    assert subnet(0) == ipaddress.IPv4Network("198.18.0.0/24")
    assert subnet(255) == ipaddress.IPv4Network("198.18.255.0/24")
    assert subnet(256) == ipaddress.IPv4Network("198.19.0.0/24")
    assert subnet(SUBNETS - 1).subnet_of(BENCHMARK_NET)
    with pytest.raises(ValueError):
        subnet(SUBNETS)
    assert gateway(subnet(3)) == "198.18.3.1"


def test_subnet_hosts_fill_up() -> None:
    hosts = SubnetHosts(subnet(7))
    taken = [hosts.take() for _ in range(253)]
    assert taken[0] == "198.18.7.2" and taken[-1] == "198.18.7.254"
    with pytest.raises(VimError, match="full"):
        hosts.take()
    hosts.give_back("198.18.7.100")
    assert hosts.take() == "198.18.7.100"


def _userdata(**kw: object) -> str:
    boot = EmsBootstrap(**{"broker_ip": "127.0.0.1", "broker_port": 5672, "username": "ems", "password": "p%w d",
                           **kw})  # type: ignore[arg-type]
    return set_hostname(render(boot), "server-42")


def test_ems_launch_from_userdata_writes_the_reference_properties() -> None:
    launch = EmsLaunch.from_userdata(_userdata(heartbeat=120, autodelete=False, endpoint="gen2"), "server-42")
    text = launch.properties({"root": "/x"})
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    ems = dict(parser.items("ems"))
    assert ems == {"broker_ip": "127.0.0.1", "broker_port": "5672", "username": "ems", "password": "p%w d",
                   "exchange": "openbaton-exchange", "heartbeat": "120", "autodelete": "false", "type": "gen2",
                   "hostname": "server-42", "root": "/x"}
    assert launch.broker_is_loopback


def test_ems_launch_refuses_bad_input() -> None:
    with pytest.raises(VimError, match="no BROKER_IP"):
        EmsLaunch.from_userdata("#!/bin/bash\necho hi\n", "h-1")
    with pytest.raises(VimError, match="not a TCP port"):
        EmsLaunch.from_userdata("export BROKER_IP=1.2.3.4\nexport BROKER_PORT=70000\n", "h-1")
    with pytest.raises(VimError, match="bad number"):
        EmsLaunch.from_userdata("export BROKER_IP=1.2.3.4\nexport BROKER_PORT=abc\n", "h-1")
    launch = EmsLaunch.from_userdata(_userdata(), "h-1").replace(password="a\nbroker_ip=evil")
    with pytest.raises(VimError, match="line break"):
        launch.properties()


def test_ems_launch_broker_url_override() -> None:
    launch = EmsLaunch.from_userdata(_userdata(), "h-1").with_broker_url("amqp://u%40x:s%2Fe@10.0.0.5:5673/vh")
    assert (launch.broker_ip, launch.broker_port, launch.username, launch.password, launch.virtual_host) == \
        ("10.0.0.5", 5673, "u@x", "s/e", "vh")
    assert "broker_ip=10.0.0.5\nbroker_port=5673\nusername=u@x\npassword=s/e\n" in launch.properties()
    assert "virtual_host=vh\n" in launch.properties()
    assert not launch.broker_is_loopback
    with pytest.raises(VimError) as refused:
        launch.with_broker_url("http://u:s3cret@x")
    assert "s3cret" not in str(refused.value)


def test_ems_launch_keeps_a_tls_broker_and_its_ca(tmp_path: Path) -> None:
    """A local EMS of a VNFM whose EMS broker is TLS gets the protocol and the CA file in its properties,
    and the EMS reading them verifies the broker with that CA (it was dropped with the URL's query)."""
    base = EmsLaunch.from_userdata(_userdata(), "h-1")
    for url, protocol, port in (("stomp+ssl://u:p@10.0.0.5:61614/?cafile=/etc/gvnfm/ca.pem", "stomp+ssl", 61614),
                                ("amqps://u:p@10.0.0.5/?cafile=/etc/gvnfm/ca.pem", "amqps", 5671)):
        launch = base.with_broker_url(url)
        assert (launch.protocol, launch.broker_port, launch.broker_cafile) == (protocol, port, "/etc/gvnfm/ca.pem")
        props = launch.properties()
        assert f"protocol={protocol}\n" in props and "broker_cafile=/etc/gvnfm/ca.pem\n" in props
        path = tmp_path / f"{protocol}.properties"
        path.write_text(props)
        cfg = load_config(path, {"root": str(tmp_path)}, environ={})
        assert cfg.amqp_url().startswith(f"{protocol}://u:p@10.0.0.5:{port}/")
        assert cfg.amqp_url().endswith("cafile=/etc/gvnfm/ca.pem")
    plain = base.with_broker_url("amqp://u:p@10.0.0.5/")
    assert (plain.protocol, plain.broker_cafile) == ("", "") and "broker_cafile" not in plain.properties()
