"""``gvnfm ems --hosts N`` on a real RabbitMQ: the fleet spreads its agents over several connections
(the agents of a connection consume on one channel of it), every agent registers and answers on its
own queue; after a broker restart too, over AMQP and over the STOMP plugin."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from gvnfm.ems import agent as agent_module
from gvnfm.ems.agent import EmsFleet
from gvnfm.ems.config import EmsConfig
from gvnfm.transport.stomp import StompTransport
from tests.support.rabbit import PrivateRabbit, private_rabbit, stomp_rabbit  # noqa: F401  (fixtures)
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq


async def _registered(register: AbstractQueue, count: int) -> set[str]:
    """The hostnames of the next ``count`` different agents registering on ``register``."""
    seen: set[str] = set()
    async with asyncio.timeout(60):
        while len(seen) < count:
            message = await register.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            seen.add(json.loads(message.body)["hostname"])
    return seen


async def _answer_on_their_queues(channel: AbstractChannel, exchange: AbstractExchange, hostnames: list[str]) -> None:
    """Each agent answers a command sent to its own queue (an unknown action: a clear error back)."""
    replies = await channel.declare_queue("", exclusive=True)
    for i, hostname in enumerate(hostnames):
        await exchange.publish(aio_pika.Message(json.dumps({"action": "NOPE"}).encode(), reply_to=replies.name,
                                                correlation_id=f"c{i}"), routing_key=f"vnfm.{hostname}.actions")
    answered: set[str] = set()
    async with asyncio.timeout(30):
        while len(answered) < len(hostnames):
            message = await replies.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            assert json.loads(message.body)["status"] == 1
            answered.add(str(message.correlation_id))
    assert answered == {f"c{i}" for i in range(len(hostnames))}


async def test_fleet_spreads_agents_over_connections(amqp_vhost: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "AGENTS_PER_CONNECTION", 2)
    type_ = unique("fleet")
    conn = await aio_pika.connect(amqp_vhost)
    channel = await conn.channel()
    exchange = await channel.declare_exchange("openbaton-exchange", aio_pika.ExchangeType.TOPIC, durable=True)
    register = await channel.declare_queue(f"ems.{type_}.register", auto_delete=True)
    await register.bind(exchange, routing_key=register.name)
    fleet = EmsFleet(EmsConfig(hostname="fl", type=type_, broker_url=amqp_vhost, root=str(tmp_path)), 5)
    await fleet.start()
    try:
        assert len({id(t) for t in fleet.transports}) == 3
        assert [next(i for i, t in enumerate(fleet.transports) if t is a.transport) for a in fleet.agents] == [
            0, 0, 1, 1, 2]
        # one consumer channel per connection, whatever its number of agents (channel_max is no limit)
        assert [len({id(c.channel) for c in t._consumers}) for t in fleet.transports] == [1, 1, 1]
        assert await _registered(register, 5) == {f"fl-{i}" for i in range(1, 6)}
        # every agent answers on its own queue, whichever connection it is on
        await _answer_on_their_queues(channel, exchange, [f"fl-{i}" for i in range(1, 6)])
    finally:
        await fleet.stop()
        await conn.close()


@pytest.mark.parametrize("protocol", ["amqp", "stomp"])
async def test_a_fleet_comes_back_and_registers_every_agent_after_a_broker_restart(
        protocol: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection of the fleet is restored (its agents' queues, bindings and consumers, by the
    transport), then its agents register again, all at once from one ``on_reconnect`` callback per
    connection; each answers on its queue again (a command published over AMQP). Over RabbitMQ's STOMP
    plugin too: several queues re-made at once, the checks of the register queue shared."""
    node: PrivateRabbit = request.getfixturevalue("private_rabbit" if protocol == "amqp" else "stomp_rabbit")
    monkeypatch.setattr(agent_module, "AGENTS_PER_CONNECTION", 2)
    type_ = unique(f"fleet-restart-{protocol}")
    hostnames = [f"fr-{i}" for i in range(1, 6)]

    async def broker() -> tuple[aio_pika.abc.AbstractConnection, AbstractChannel, AbstractExchange, AbstractQueue]:
        conn = await aio_pika.connect(node.url)
        channel = await conn.channel()
        exchange = await channel.declare_exchange("openbaton-exchange", aio_pika.ExchangeType.TOPIC, durable=True)
        register = await channel.declare_queue(f"ems.{type_}.register", durable=True)   # survives the restart
        await register.bind(exchange, routing_key=register.name)
        return conn, channel, exchange, register

    conn, channel, exchange, register = await broker()
    fleet = EmsFleet(EmsConfig(hostname="fr", type=type_, broker_url=node.url if protocol == "amqp" else node.stomp_url,
                               root=str(tmp_path), reconnect_max=1.0), 5)
    await fleet.start()
    try:
        assert len(fleet.transports) == 3
        assert all(isinstance(t, StompTransport) == (protocol == "stomp") for t in fleet.transports)
        assert await _registered(register, 5) == set(hostnames)
        await asyncio.to_thread(node.restart)
        with contextlib.suppress(Exception):
            await conn.close()   # the restart dropped it; closed here, not by its __del__ in some thread
        conn, channel, exchange, register = await broker()
        assert await _registered(register, 5) == set(hostnames)
        assert [t.reconnects for t in fleet.transports] == [1, 1, 1]
        await _answer_on_their_queues(channel, exchange, hostnames)
    finally:
        await fleet.stop()
        with contextlib.suppress(Exception):
            await channel.queue_delete(f"ems.{type_}.register")
        await conn.close()
