"""The VNFM with host users on the real broker: an EMS with its own user registers and answers; a
registration of another host (as a host user or with other credentials) and a reply forged by another
host's user are refused by the VNFM, with a warning, while the broker checked every ``user_id``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gvnfm.ems.agent import EmsAgent
from gvnfm.ems.config import EmsConfig
from gvnfm.store.api import OperationContext
from gvnfm.store.sql import SqlStore
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.broker_users import BrokerUsers, broker_vhost, hosts_pattern, management_url, vnfr_hosts_pattern
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings
from tests.integration.test_broker_users import as_user
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq

A, B = "web-1111111", "web-2222222"


async def until(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Wait for ``check()`` (a hang guard only: the broker and the VNFM are real)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


@pytest.fixture
async def vnfm(amqp_vhost: str, tmp_path: Path) -> AsyncIterator[VnfmService]:
    settings = VnfmSettings(broker=amqp_vhost, endpoint=unique("hostusers"), register_with_nfvo=False,
                            state_dir=tmp_path, script_log_minutes=0)
    transport = AmqpTransport(amqp_vhost)
    await transport.connect()
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'vnfm.db'}")
    service = VnfmService(settings, transport=transport, store=store)
    await service.start()
    assert service.host_users is not None and service.host_users.available
    made: list[str] = []
    create = service.host_users.create

    async def tracked(hosts: str) -> tuple[str, str]:
        user, password = await create(hosts)
        made.append(user)
        return user, password

    service.host_users.create = tracked  # type: ignore[method-assign]
    try:
        yield service
    finally:
        for user in made:
            await service.host_users.delete(user)
        await service.stop(grace=1)
        await transport.close()
        await store.close()


async def test_registrations_and_replies_only_from_the_hosts_own_user(
        vnfm: VnfmService, amqp_vhost: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert vnfm.host_users is not None
    user_a, pw_a = await vnfm.host_users.create(hosts_pattern([A]))
    user_b, _ = await vnfm.host_users.create(hosts_pattern([B]))
    register_key = f"ems.{vnfm.settings.endpoint}.register"

    # A's EMS (its own user, as its user-data says) registers and answers a command
    agent = EmsAgent(EmsConfig(hostname=A, type=vnfm.settings.endpoint, broker_url=as_user(amqp_vhost, user_a, pw_a),
                               host_user=True, root=str(tmp_path / "a")))
    await agent.start()
    try:
        await until(lambda: vnfm.registrations.is_registered(A), "A registered")
        reply = await vnfm.ems_client.send(A, {"action": "SAVE_SCRIPTS", "name": "x.sh", "payload": "ZWNobw=="},
                                           correlation_id="op:a-save", timeout=30)
        assert reply.status == 0, reply

        # with A's credentials: registering B (as A) is refused by the VNFM ...
        conn = await aio_pika.connect(as_user(amqp_vhost, user_a, pw_a))
        ch = await conn.channel()
        ex = await ch.get_exchange("openbaton-exchange", ensure=False)
        await ex.publish(aio_pika.Message(f'{{"hostname":"{B}"}}'.encode(), user_id=user_a), routing_key=register_key)
        await until(lambda: f"event=registration_refused hostname={B} user_id={user_a}" in caplog.text, "refused")
        # ... and so is B registered with other credentials (the VNFM's own, a shared EMS user)
        guest = await aio_pika.connect(amqp_vhost)
        await (await guest.channel()).default_exchange.publish(
            aio_pika.Message(f'{{"hostname":"{B}"}}'.encode()), routing_key=register_key)
        await until(lambda: f"event=registration_refused hostname={B} user_id=None" in caplog.text, "refused")
        assert not vnfm.registrations.is_registered(B)

        # a command to B: A answers it in B's place through the exchange (it learnt the reply queue from
        # its own commands): the VNFM refuses the reply, the command is not answered
        async def forge() -> None:
            await until(lambda: vnfm.ems_client.transport._reply_queue is not None, "reply queue")  # type: ignore[attr-defined]
            reply_queue = vnfm.ems_client.transport._reply_queue  # type: ignore[attr-defined]
            await until(lambda: vnfm.ems_client.transport._pending.expected_user("op:b-run") is not None,  # type: ignore[attr-defined]
                        "command sent")
            await ex.publish(aio_pika.Message(b'{"output":"forged","err":"","status":0}', correlation_id="op:b-run",
                                              user_id=user_a), routing_key=reply_queue)

        forged = asyncio.create_task(forge())
        reply = await vnfm.ems_client.send(B, {"action": "EXECUTE", "payload": "x.sh"}, correlation_id="op:b-run",
                                           timeout=5)
        await forged
        assert reply.status == -1 and reply.output != "forged"
        assert f"event=reply_refused correlation_id=op:b-run user_id={user_a}" in caplog.text
        assert vnfm.host_users is not None and await vnfm.host_users.user_of(B) == user_b
        await conn.close()
        await guest.close()
    finally:
        await agent.stop()


async def test_a_starting_vnfm_deletes_the_users_a_killed_one_left_unpinned(amqp_vhost: str, tmp_path: Path) -> None:
    """A worker killed after making a host user, before the NFVO named the hosts and nothing resumed it:
    the next VNFM of the endpoint deletes that user at start; one a running operation of the store names
    (another worker is asking the NFVO with it) is kept."""
    endpoint = unique("sweep")
    settings = VnfmSettings(broker=amqp_vhost, endpoint=endpoint, register_with_nfvo=False, state_dir=tmp_path,
                            script_log_minutes=0)
    users = BrokerUsers(management_url(amqp_vhost), vhost=broker_vhost(amqp_vhost), exchange=settings.exchange,
                        register_key=f"ems.{endpoint}.register")
    assert await users.probe()
    leaked, _ = await users.create(vnfr_hosts_pattern("lost"))
    named, _ = await users.create(vnfr_hosts_pattern("busy"))
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'vnfm.db'}")
    op, owned = await store.claim_operation("op-busy", action="INSTANTIATE", vnfr_id=None, vnfr_name="busy",
                                            request={}, worker="w-other", lease_seconds=60)
    assert owned
    await store.set_context(op.id, OperationContext(ems_user=named), worker="w-other")
    transport = AmqpTransport(amqp_vhost)
    await transport.connect()
    service = VnfmService(settings, transport=transport, store=store)
    try:
        await service.start()
        left = set(await users._record())
        assert leaked not in left and named in left, left
    finally:
        await service.stop(grace=1)
        await users.delete(named)
        await users.delete(leaked)
        await users.close()
        await transport.close()
        await store.close()
