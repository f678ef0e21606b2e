"""No poison-message loop on the real broker and PostgreSQL: an answer larger than the broker takes is
replaced by an ERROR that fits; a message whose handling keeps failing is answered with an ERROR and
acknowledged after ``max_delivery_failures`` attempts; a permanent broker refusal of an EMS command
fails at once instead of being retried until the deadline."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gvnfm.store.sql import SqlStore
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.ems_client import EmsClient
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings
from tests.support.services import unique

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.faults]

LIMIT = 256 * 1024   # the VNFM's broker limit in these tests (RabbitMQ's own is 128 MiB)


class FailingStore(SqlStore):
    """A store whose claims always fail (the database refuses the transaction)."""

    async def claim_operation(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("could not serialize access due to a database that is down")


class Nfvo:
    """The NFVO's side: sends to the endpoint with a reply_to, as the Java NFVO's RPC does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.t = AmqpTransport(url)

    async def call(self, endpoint: str, msg: dict[str, Any]) -> dict[str, Any]:
        raw = await self.t.rpc(endpoint, json.dumps(msg).encode(), timeout=120, correlation_id=uuid.uuid4().hex)
        return json.loads(raw)

    async def ready_messages(self, queue: str) -> int:
        conn = await aio_pika.connect(self.url)
        try:
            ch = await conn.channel()
            q = await ch.declare_queue(queue, passive=True)
            return q.declaration_result.message_count or 0
        finally:
            await conn.close()


@pytest.fixture
async def nfvo(amqp_vhost: str) -> AsyncIterator[Nfvo]:
    n = Nfvo(amqp_vhost)
    await n.t.connect()
    try:
        yield n
    finally:
        await n.t.close()


async def start_vnfm(url: str, store: SqlStore, tmp: Path, **settings: Any) -> tuple[VnfmService, AmqpTransport]:
    transport = AmqpTransport(url, max_message_bytes=LIMIT)
    await transport.connect()
    # the endpoint queue outlives the VNFM here, so that what it left in it can be counted
    s = VnfmSettings(endpoint=unique("poison"), register_with_nfvo=False, state_dir=tmp, script_log_minutes=0,
                     endpoint_queue_auto_delete=False, **settings)
    service = VnfmService(s, transport=transport, store=store)
    await service.start()
    return service, transport


def big_vnfr(size: int) -> dict[str, Any]:
    return {"id": "vnfr-big", "name": "big", "type": "t", "endpoint": "generic", "status": "ACTIVE",
            "parent_ns_id": "nsr-1", "vdu": [],
            "configurations": {"name": "c", "configurationParameters": [{"confKey": "blob", "value": "x" * size}]}}


async def test_a_reply_over_the_size_limit_becomes_an_error_that_fits(nfvo: Nfvo, pg_db: str, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = await SqlStore.open(pg_db)
    service, transport = await start_vnfm(nfvo.url, store, tmp_path)
    try:
        reply = await nfvo.call(service.settings.endpoint, {"action": "RELEASE_RESOURCES",
                                                            "vnfr": big_vnfr(LIMIT + 1000)})
        assert reply["action"] == "ERROR", reply
        detail = reply["exception"]["detailMessage"]
        assert "refused by the broker" in detail and "exceeds the limit" in detail, detail
        # the NFVO can find the record: its identity is kept, what made the answer too large is not
        assert reply["virtualNetworkFunctionRecord"]["id"] == "vnfr-big"
        assert "configurations" not in reply["virtualNetworkFunctionRecord"]
    finally:
        await service.stop(grace=5)
        await transport.close()
        await store.close()
    # acknowledged once: nothing handed back to the queue, one handling
    assert await nfvo.ready_messages(service.settings.endpoint) == 0
    assert sum("event=operation_start" in r.getMessage() for r in caplog.records) == 1


async def test_a_message_that_keeps_failing_is_answered_and_acknowledged(
        nfvo: Nfvo, pg_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = await FailingStore.open(pg_db)
    service, transport = await start_vnfm(nfvo.url, store, tmp_path, max_delivery_failures=3, redelivery_pause=0.01)
    try:
        reply = await nfvo.call(service.settings.endpoint, {"action": "START", "virtualNetworkFunctionRecord":
                                                            big_vnfr(10)})
        assert reply["action"] == "ERROR", reply
        detail = reply["exception"]["detailMessage"]
        assert "could not handle START (3 attempts failed)" in detail and "database that is down" in detail, detail
        assert reply["virtualNetworkFunctionRecord"]["id"] == "vnfr-big"
    finally:
        await service.stop(grace=5)
        await transport.close()
        await store.close()
    assert await nfvo.ready_messages(service.settings.endpoint) == 0
    assert sum("event=operation_interrupted" in r.getMessage() for r in caplog.records) == 3
    assert sum("event=message_given_up" in r.getMessage() for r in caplog.records) == 1


async def test_a_routing_key_too_long_fails_at_once(nfvo: Nfvo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = EmsClient(nfvo.t, timeout=600)
    reply = await client.send("h" * 300, {"action": "EXECUTE", "payload": "start.sh"}, correlation_id="op:step")
    assert reply.status == -1 and "Routing key too long" in reply.err, reply
    assert not [r for r in caplog.records if "event=ems_rpc_retry" in r.getMessage()]


async def test_an_ems_reply_over_the_size_limit_is_replaced_by_one_that_fits(nfvo: Nfvo, tmp_path: Path) -> None:
    from gvnfm.ems.agent import EmsAgent
    from gvnfm.ems.config import EmsConfig

    hostname = unique("big-out")
    root = tmp_path / "ems"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "big.sh").write_text(f"#!/bin/bash\nhead -c {2 * LIMIT} /dev/zero | tr '\\\\0' x\nexit 3\n")
    (root / "scripts" / "big.sh").chmod(0o755)
    transport = AmqpTransport(nfvo.url, max_message_bytes=LIMIT)
    agent = EmsAgent(EmsConfig(hostname=hostname, type=unique("t"), broker_url=nfvo.url, root=str(root),
                               max_output_bytes=4 * LIMIT), transport=transport)
    await transport.connect()
    await agent.start()
    try:
        client = EmsClient(nfvo.t, timeout=120)
        reply = await client.send(hostname, {"action": "EXECUTE", "payload": "big.sh"}, correlation_id="op:big")
        assert reply.status == 3 and "was refused by the broker" in reply.err, reply
        again = await client.send(hostname, {"action": "EXECUTE", "payload": "big.sh"}, correlation_id="op:big")
        assert again == reply and agent.executions == 1       # answered from the cache, not run again
    finally:
        await agent.stop()
        await transport.close()
