"""``gvnfm ems --hosts N`` on a real RabbitMQ: the fleet spreads its agents over several connections
(the agents of a connection consume on one channel of it), every agent registers and answers on its
own queue."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest

from gvnfm.ems import agent as agent_module
from gvnfm.ems.agent import EmsFleet
from gvnfm.ems.config import EmsConfig
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq


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
        seen: set[str] = set()
        async with asyncio.timeout(30):
            while len(seen) < 5:
                message = await register.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                seen.add(json.loads(message.body)["hostname"])
        assert seen == {f"fl-{i}" for i in range(1, 6)}
        # every agent answers on its own queue, whichever connection it is on
        replies = await channel.declare_queue("", exclusive=True)
        for i in range(1, 6):
            await exchange.publish(aio_pika.Message(json.dumps({"action": "NOPE"}).encode(), reply_to=replies.name,
                                                    correlation_id=f"c{i}"), routing_key=f"vnfm.fl-{i}.actions")
        answered: set[str] = set()
        async with asyncio.timeout(30):
            while len(answered) < 5:
                message = await replies.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                assert json.loads(message.body)["status"] == 1   # unknown action: a clear error back
                answered.add(str(message.correlation_id))
        assert answered == {f"c{i}" for i in range(1, 6)}
    finally:
        await fleet.stop()
        await conn.close()
