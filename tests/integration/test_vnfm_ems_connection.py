"""The VNFM's EMS-side connection (EMS registrations and commands) on a real RabbitMQ: like the
reference's registration listener (§2.1) it uses the EMS credentials (``vnfm.ems.username`` /
``vnfm.ems.password``, the ones the VMs get), unless ``--ems-broker`` says otherwise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gvnfm.cli.vnfm_cmd import ems_connection_url, open_ems_transport, run_vnfm
from gvnfm.transport import TransportError
from gvnfm.vnfm.settings import VnfmSettings, load_settings
from tests.support.broker_admin import BrokerAdmin, broker_admin
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def ems_user(amqp_vhost: str, rabbit_admin: BrokerAdmin) -> Iterator[tuple[str, str]]:
    """A broker user of the test's virtual host, as an operator creates for the EMSs."""
    user, password = unique("ems"), unique("pw")
    vhost = amqp_vhost.rsplit("/", 1)[1]
    rabbit_admin.add_user(user, password)
    try:
        rabbit_admin.set_permissions(vhost, user, ".*", ".*", ".*")
        yield user, password
    finally:
        rabbit_admin.delete_user(user)


async def connection_users(vhost: str, expected: set[str]) -> list[str]:
    """The users connected to ``vhost``, once ``expected`` are among them (or after a hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        users = await asyncio.to_thread(broker_admin().connection_users, vhost)
        if expected <= set(users) or loop.time() > deadline:
            return users
        await asyncio.sleep(0.2)


def test_the_ems_connection_url() -> None:
    amqp = "amqp://mgr:secret@10.0.0.5:5673/ob"
    assert ems_connection_url(VnfmSettings(broker="memory://x")) is None
    assert ems_connection_url(VnfmSettings(broker=amqp)) == "amqp://admin:openbaton@10.0.0.5:5673/ob"
    assert ems_connection_url(VnfmSettings(broker=amqp, ems_username="mgr", ems_password="secret")) is None
    assert ems_connection_url(VnfmSettings(broker=amqp, ems_broker="amqp://e:p@h/")) == "amqp://e:p@h/"
    assert ems_connection_url(VnfmSettings(broker=amqp, ems_broker=amqp)) is None


async def test_the_ems_side_connects_with_the_ems_credentials(amqp_vhost: str, ems_user: tuple[str, str]) -> None:
    user, password = ems_user
    settings = load_settings(None, {"broker": amqp_vhost, "ems_username": user, "ems_password": password},
                             environ={})
    transport = await open_ems_transport(settings)
    assert transport is not None
    try:
        assert user in await connection_users(amqp_vhost.rsplit("/", 1)[1], {user})
    finally:
        await transport.close()
    wrong = load_settings(None, {"broker": amqp_vhost, "ems_username": user, "ems_password": "wrong"}, environ={})
    with pytest.raises(TransportError, match="refused"):
        await open_ems_transport(wrong)        # configured credentials the broker refuses: an error


async def test_default_ems_credentials_the_broker_refuses_fall_back_to_the_broker_connection(
        amqp_vhost: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert await open_ems_transport(load_settings(None, {"broker": amqp_vhost}, environ={})) is None
    assert "event=ems_credentials_refused" in caplog.text and "admin" in caplog.text


async def test_the_vnfm_consumes_ems_registrations_as_the_ems_user(
        amqp_vhost: str, ems_user: tuple[str, str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    user, password = ems_user
    vhost = amqp_vhost.rsplit("/", 1)[1]
    settings = load_settings(None, {"broker": amqp_vhost, "ems_username": user, "ems_password": password,
                                    "endpoint": unique("ep"), "state_dir": tmp_path, "register_with_nfvo": False},
                             environ={})
    stop = asyncio.Event()
    task = asyncio.create_task(run_vnfm(settings, stop))
    try:
        for _ in range(200):
            if "event=vnfm_started" in caplog.text or task.done():
                break
            await asyncio.sleep(0.05)
        assert "event=vnfm_started" in caplog.text
        users = await connection_users(vhost, {"guest", user})
        assert sorted(set(users)) == sorted({"guest", user}), users
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
