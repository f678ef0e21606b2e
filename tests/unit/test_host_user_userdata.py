"""Host users in the user-data and in the permissions the VNFM gives them (decisions without I/O)."""

from __future__ import annotations

import re

from gvnfm.catalogue import userdata
from gvnfm.vim.ems_launch import EmsLaunch
from gvnfm.vnfm.broker_users import (
    BrokerUsers,
    host_permissions,
    hosts_pattern,
    is_host_user,
    is_pinned,
    leaked_users,
    management_url,
    serves,
    vnfr_hosts_pattern,
)


def boot(**kw: object) -> userdata.EmsBootstrap:
    return userdata.EmsBootstrap(broker_ip="10.0.0.1", broker_port=5672, username="gvnfm-ems-ab", password="p w",
                                 **kw)  # type: ignore[arg-type]


def test_a_host_user_travels_in_the_user_data_and_is_kept_by_the_local_vims() -> None:
    text = userdata.set_hostname(userdata.render(boot(host_user=True)), "web-1234567")
    assert "export EMS_HOST_USER=true" in text and "host_user=$EMS_HOST_USER" in text
    launch = EmsLaunch.from_userdata(text, "web-1234567").with_broker_url("amqp://admin:secret@127.0.0.1:5673/vh")
    assert (launch.username, launch.password, launch.broker_port, launch.virtual_host) == \
        ("gvnfm-ems-ab", "p w", 5673, "vh")
    assert "host_user=true\n" in launch.properties()
    shared = EmsLaunch.from_userdata(userdata.render(boot()), "h-1").with_broker_url("amqp://admin:secret@h/")
    assert (shared.username, shared.host_user) == ("admin", False) and "host_user" not in shared.properties()


def test_only_templates_that_pass_the_host_user_on_get_one() -> None:
    assert userdata.takes_host_user()
    assert not userdata.takes_host_user("#!/bin/bash\nexport USERNAME=\nexport PASSWORD=\n")


def test_permissions_of_a_host_user() -> None:
    p = host_permissions(hosts_pattern(["web-1", "web-2"]), exchange="openbaton-exchange",
                         register_key="ems.generic.register")
    assert re.fullmatch(p.configure, "vnfm.web-1.actions") and not re.fullmatch(p.configure, "vnfm.web-3.actions")
    assert not re.fullmatch(p.configure, "openbaton-exchange")          # never configure (delete) the exchange
    assert re.fullmatch(p.write, "openbaton-exchange") and not re.fullmatch(p.write, "amq.default")
    assert re.fullmatch(p.topic_write, "ems.generic.register") and re.fullmatch(p.topic_write, "amq.gen-Ab_1-x")
    for key in ("generic", "#", "vnfm.web-3.actions", "nfvo.vnfm.actions", "ems.other.register"):
        assert not re.fullmatch(p.topic_write, key), key
    assert re.fullmatch(p.topic_read, "vnfm.web-2.actions") and not re.fullmatch(p.topic_read, "#")
    assert serves(host_permissions(vnfr_hosts_pattern("a.b"), exchange="x", register_key="r").configure, "a.b-123")
    assert not serves(host_permissions(vnfr_hosts_pattern("a.b"), exchange="x", register_key="r").configure, "aXb-123")
    assert management_url("amqp://u:p%40ss@broker:5672/vh") == "http://u:p%40ss@broker:15672"


def test_only_what_the_vnfm_makes_is_a_host_user() -> None:
    ex = "openbaton-exchange"
    for hosts in (vnfr_hosts_pattern("iperf-server"), hosts_pattern(["a-1", "b.2"])):
        p = host_permissions(hosts, exchange=ex, register_key="ems.generic.register")
        assert is_host_user("gvnfm-ems-e0065dbb9f385654", p.configure, p.write, p.read, exchange=ex)
        assert not is_host_user("gvnfm-ems-20e64eebe4", p.configure, p.write, p.read, exchange=ex)
        assert not is_host_user("gvnfm-ems-e0065dbb9f385654", p.configure, p.write, p.read, exchange="other")
    # an operator's user named like one, with everything on the vhost
    assert not is_host_user("gvnfm-ems-e0065dbb9f385654", ".*", ".*", ".*", exchange=ex)
    assert not is_host_user("gvnfm-ems-20e64eebe4", ".*", ".*", ".*", exchange=ex)


async def test_the_user_pinned_to_a_host_is_its_user_before_a_dead_runs_unpinned_one() -> None:
    """A VNFM killed between making a VNFR's user (``<vnfr>-[0-9]+``) and pinning it leaves that user
    behind; the next run's user, pinned to the exact hostname, is the one whose replies are awaited."""
    users = BrokerUsers("http://127.0.0.1:15672", vhost="/", exchange="openbaton-exchange",
                        register_key="ems.generic.register")
    try:
        perms = {"gvnfm-ems-" + "a" * 16: host_permissions(vnfr_hosts_pattern("app"), exchange="x", register_key="k"),
                 "gvnfm-ems-" + "b" * 16: host_permissions(hosts_pattern(["app-8026943"]), exchange="x",
                                                           register_key="k")}
        users._served = {user: p.configure for user, p in perms.items()}   # the broker's record, as read
        assert await users.user_of("app-8026943") == "gvnfm-ems-" + "b" * 16
        assert await users.user_of("app-1111111") == "gvnfm-ems-" + "a" * 16   # only the pattern serves it
    finally:
        await users.close()


def test_leaked_users_are_the_unpinned_ones_no_running_operation_names() -> None:
    unpinned, pinned = host_permissions(vnfr_hosts_pattern("web"), exchange="x", register_key="r").configure, \
        host_permissions(hosts_pattern(["web-1234567"]), exchange="x", register_key="r").configure
    assert not is_pinned(unpinned) and is_pinned(pinned)
    record = {"gvnfm-ems-b": unpinned, "gvnfm-ems-a": unpinned, "gvnfm-ems-c": pinned, "gvnfm-ems-d": unpinned}
    assert leaked_users(record, ["gvnfm-ems-d"]) == ["gvnfm-ems-a", "gvnfm-ems-b"]
    assert leaked_users(record, record) == []
    assert leaked_users({}, []) == []
