"""The EMS agent over the in-memory broker: registration, RPC replies, concurrency, dedupe, fleet."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems import agent as agent_module
from gvnfm.ems.agent import EmsAgent, EmsFleet
from gvnfm.ems.config import EmsConfig
from gvnfm.transport import Delivery, Message, TransportError
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from tests.support.services import unique


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Vnfm:
    """What the reference VNFM does: a register queue, RPCs to vnfm.<hostname>.actions."""

    def __init__(self, broker: InMemoryBroker, type_: str) -> None:
        self.transport = InMemoryTransport(broker)
        self.register_queue = f"ems.{type_}.register"
        self.registrations: list[Message] = []
        self.registered = asyncio.Event()

    async def start(self) -> None:
        await self.transport.connect()
        await self.transport.declare_queue(self.register_queue, durable=True, auto_delete=True)

        async def on_register(delivery: Delivery) -> None:
            self.registrations.append(delivery.message)
            self.registered.set()
            await delivery.ack()

        await self.transport.consume(self.register_queue, on_register)

    async def call(self, hostname: str, command: dict[str, Any] | bytes, *, cid: str | None = None,
                   timeout: float = 20) -> EmsReply:
        body = command if isinstance(command, bytes) else json.dumps(command).encode()
        raw = await self.transport.rpc(f"vnfm.{hostname}.actions", body, timeout=timeout, correlation_id=cid)
        data = json.loads(raw)
        assert set(data) == {"output", "err", "status"}
        return EmsReply.model_validate(data)


@pytest.fixture()
async def env(tmp_path: Path) -> AsyncIterator[tuple[Vnfm, InMemoryBroker, EmsConfig]]:
    broker = InMemoryBroker()
    type_ = unique("ut")
    vnfm = Vnfm(broker, type_)
    await vnfm.start()
    cfg = EmsConfig(hostname=unique("vnfc") + "-1", type=type_, root=str(tmp_path / "host"), kill_grace=0.2)
    yield vnfm, broker, cfg
    await vnfm.transport.close()


async def started_agent(broker: InMemoryBroker, cfg: EmsConfig) -> EmsAgent:
    transport = InMemoryTransport(broker)
    await transport.connect()
    agent = EmsAgent(cfg, transport=transport)
    await agent.start()
    return agent


async def test_registration_queue_and_reply(env: tuple[Vnfm, InMemoryBroker, EmsConfig]) -> None:
    vnfm, broker, cfg = env
    agent = await started_agent(broker, cfg)
    try:
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        reg = vnfm.registrations[0]
        assert json.loads(reg.body) == {"hostname": cfg.hostname}
        assert reg.content_type == "text/plain"
        queue = broker.queues[f"vnfm.{cfg.hostname}.actions"]
        assert queue.auto_delete and not queue.durable
        reply = await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64("echo hi"),
                                               "name": "install.sh", "script-path": "/opt/openbaton/scripts"},
                                cid="c-1")
        assert (reply.status, reply.output) == (0, "['install.sh']")
        reply = await vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "install.sh", "env": {"a": "b"}})
        assert (reply.status, reply.output) == (0, "hi\n")
        # answered bodies that are not commands
        assert (await vnfm.call(cfg.hostname, b"{broken")).status != 0
        assert "unknown action" in (await vnfm.call(cfg.hostname, {"action": "NOPE"})).err
        await asyncio.sleep(0.05)
        assert not queue.messages and all(c.unacked == 0 for c in queue.consumers)  # acked after the reply
    finally:
        await agent.stop()


async def test_registration_body_is_json_escaped(tmp_path: Path) -> None:
    broker = InMemoryBroker()
    vnfm = Vnfm(broker, "esc")
    await vnfm.start()
    agent = await started_agent(broker, EmsConfig(hostname='we"ird\\name-7', type="esc", root=str(tmp_path)))
    try:
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        assert json.loads(vnfm.registrations[0].body) == {"hostname": 'we"ird\\name-7'}
    finally:
        await agent.stop()


async def test_agent_started_before_the_vnfm_registers_once_its_queue_exists(tmp_path: Path) -> None:
    broker = InMemoryBroker()
    type_ = unique("early")
    agent = await started_agent(broker, EmsConfig(hostname="early-1", type=type_, root=str(tmp_path)))
    vnfm = Vnfm(broker, type_)
    try:
        assert agent.registrations == 0   # nothing published into the void
        await vnfm.transport.connect()
        assert (await vnfm.call("early-1", {"action": "NOPE"}, timeout=5)).status == 1  # commands are served
        await asyncio.sleep(0.6)           # a few retries
        await vnfm.start()
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        assert [json.loads(m.body) for m in vnfm.registrations] == [{"hostname": "early-1"}]
        assert agent.registrations == 1
    finally:
        await agent.stop()
        await vnfm.transport.close()
    assert agent._registering is None


class _BindRefused(InMemoryTransport):
    async def bind(self, queue: str, routing_key: str) -> None:
        if queue.startswith("ems."):
            raise TransportError(f"cannot bind {queue!r}: ACCESS_REFUSED - access to queue refused")
        await super().bind(queue, routing_key)


async def test_a_user_not_allowed_to_bind_registers_unchecked(env: tuple[Vnfm, InMemoryBroker, EmsConfig]) -> None:
    vnfm, broker, cfg = env
    transport = _BindRefused(broker)
    await transport.connect()
    agent = EmsAgent(cfg, transport=transport)
    await agent.start()
    try:
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        assert agent.registrations == 1
    finally:
        await agent.stop()
        await transport.close()


async def test_long_script_does_not_block_other_commands(env: tuple[Vnfm, InMemoryBroker, EmsConfig],
                                                          tmp_path: Path) -> None:
    vnfm, broker, cfg = env
    agent = await started_agent(broker, cfg)
    try:
        # the long script runs until the test releases it: the quick one is answered meanwhile
        started, release = tmp_path / "long-started", tmp_path / "release"
        long_sh = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done; echo long-done"
        for name, text in (("long.sh", long_sh), ("quick.sh", "echo quick")):
            await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64(text), "name": name,
                                           "script-path": "/opt/openbaton/scripts"})
        long = asyncio.create_task(vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "long.sh"}, cid="L",
                                             timeout=120))
        async with asyncio.timeout(60):    # hang guard
            while not started.exists():
                await asyncio.sleep(0.02)
        quick = await vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "quick.sh"}, cid="Q", timeout=60)
        assert quick.output == "quick\n"
        assert not long.done()
        release.touch()
        assert (await long).output == "long-done\n"
    finally:
        await agent.stop()


async def test_same_correlation_id_runs_once_while_running_and_after(env: tuple[Vnfm, InMemoryBroker, EmsConfig],
                                                                     tmp_path: Path) -> None:
    vnfm, broker, cfg = env
    other = InMemoryTransport(broker)  # a second VNFM connection re-sending the same command
    await other.connect()
    agent = await started_agent(broker, cfg)
    counter = tmp_path / "runs.txt"
    try:
        await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64(f"echo run >> {counter}; sleep $DELAY; "
                                                                                 "echo finished"),
                                       "name": "once.sh", "script-path": "/opt/openbaton/scripts"})
        command = json.dumps({"action": "EXECUTE", "payload": "once.sh", "env": {"DELAY": "1"}}).encode()
        first = asyncio.create_task(vnfm.transport.rpc(f"vnfm.{cfg.hostname}.actions", command, timeout=10,
                                                       correlation_id="op-1/step-3"))
        await asyncio.sleep(0.3)
        second = await other.rpc(f"vnfm.{cfg.hostname}.actions", command, timeout=10, correlation_id="op-1/step-3")
        assert json.loads(second)["output"] == "finished\n"
        assert json.loads(await first) == json.loads(second)
        third = await other.rpc(f"vnfm.{cfg.hostname}.actions", command, timeout=10, correlation_id="op-1/step-3")
        assert json.loads(third) == json.loads(second)
        assert counter.read_text() == "run\n"
        # the same id with another body is another command; no id at all is always executed
        await vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "once.sh", "env": {"DELAY": "0"}},
                        cid="op-1/step-3")
        await vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "once.sh", "env": {"DELAY": "0"}})
        await vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "once.sh", "env": {"DELAY": "0"}})
        assert counter.read_text() == "run\n" * 4
    finally:
        await agent.stop()
        await other.close()


async def test_redelivered_message_is_answered_from_the_result(env: tuple[Vnfm, InMemoryBroker, EmsConfig],
                                                              tmp_path: Path) -> None:
    vnfm, broker, cfg = env
    agent = await started_agent(broker, cfg)
    counter = tmp_path / "runs.txt"
    replies: list[Message] = []

    class FakeDelivery(Delivery):
        def __init__(self, message: Message) -> None:
            self.message = message
            self.acked = False

        async def ack(self) -> None:
            self.acked = True

        async def reject(self, requeue: bool = False) -> None:
            raise AssertionError("rejected")

    try:
        await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64(f"echo run >> {counter}"),
                                       "name": "a.sh", "script-path": "/opt/openbaton/scripts"})
        reply_q = unique("reply")
        await vnfm.transport.declare_queue(reply_q, bind=False)

        async def collect(d: Delivery) -> None:
            replies.append(d.message)
            await d.ack()

        await vnfm.transport.consume(reply_q, collect)
        body = json.dumps({"action": "EXECUTE", "payload": "a.sh"}).encode()
        deliveries = [FakeDelivery(Message(body=body, reply_to=reply_q, correlation_id="cid-9",
                                           redelivered=i > 0)) for i in range(2)]
        for d in deliveries:
            await agent._on_delivery(d)
        await asyncio.sleep(0.05)
        assert all(d.acked for d in deliveries)
        assert [m.correlation_id for m in replies] == ["cid-9", "cid-9"]
        assert counter.read_text() == "run\n"
    finally:
        await agent.stop()


async def test_results_survive_an_agent_restart(env: tuple[Vnfm, InMemoryBroker, EmsConfig], tmp_path: Path) -> None:
    vnfm, broker, cfg = env
    counter = tmp_path / "runs.txt"
    agent = await started_agent(broker, cfg)
    command = {"action": "EXECUTE", "payload": "a.sh"}
    try:
        await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64(f"echo run >> {counter}; echo out"),
                                       "name": "a.sh", "script-path": "/opt/openbaton/scripts"})
        assert (await vnfm.call(cfg.hostname, command, cid="persist-1")).output == "out\n"
    finally:
        await agent.stop()
    state = Path(cfg.state_dir) / "results.jsonl"
    assert state.stat().st_mode & 0o777 == 0o600
    agent = await started_agent(broker, cfg)
    try:
        assert (await vnfm.call(cfg.hostname, command, cid="persist-1")).output == "out\n"
        assert counter.read_text() == "run\n"
    finally:
        await agent.stop()


async def test_stop_kills_running_scripts(env: tuple[Vnfm, InMemoryBroker, EmsConfig], tmp_path: Path) -> None:
    vnfm, broker, cfg = env
    agent = await started_agent(broker, cfg)
    await vnfm.call(cfg.hostname, {"action": "SAVE_SCRIPTS", "payload": b64(f"echo $$ > {tmp_path}/pid; sleep 300"),
                                   "name": "hang.sh", "script-path": "/opt/openbaton/scripts"})
    call = asyncio.create_task(vnfm.call(cfg.hostname, {"action": "EXECUTE", "payload": "hang.sh"}, cid="h"))
    for _ in range(50):
        if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip():
            break
        await asyncio.sleep(0.05)
    pid = int((tmp_path / "pid").read_text())
    await agent.stop()
    await asyncio.sleep(0.2)
    assert not alive(pid)
    call.cancel()


async def test_fleet_shares_one_connection(tmp_path: Path) -> None:
    broker = InMemoryBroker()
    type_ = unique("fleet")
    vnfm = Vnfm(broker, type_)
    await vnfm.start()
    transport = InMemoryTransport(broker)
    await transport.connect()
    fleet = EmsFleet(EmsConfig(hostname="bench", type=type_, root=str(tmp_path)), 3, transport=transport)
    await fleet.start()
    try:
        for _ in range(50):
            if len(vnfm.registrations) == 3:
                break
            await asyncio.sleep(0.02)
        assert sorted(json.loads(m.body)["hostname"] for m in vnfm.registrations) == ["bench-1", "bench-2", "bench-3"]
        for i in (1, 2, 3):
            reply = await vnfm.call(f"bench-{i}", {"action": "SAVE_SCRIPTS", "payload": b64(f"echo host {i}"),
                                                   "name": "id.sh", "script-path": "/opt/openbaton/scripts"})
            assert reply.status == 0
        for i in (1, 2, 3):
            assert (await vnfm.call(f"bench-{i}", {"action": "EXECUTE", "payload": "id.sh"})).output == f"host {i}\n"
            assert (tmp_path / f"bench-{i}" / "scripts" / "id.sh").exists()
    finally:
        await fleet.stop()
        await transport.close()
        await vnfm.transport.close()


async def test_a_fleet_starts_its_agents_at_once_up_to_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``STARTS_AT_ONCE`` agents declare, consume and register together (one after the other, 1,000 agents
    took 16.5 s over STOMP), never more; every agent ends up started; a start that fails fails the fleet's
    with its own error."""
    monkeypatch.setattr(agent_module, "STARTS_AT_ONCE", 4)
    broker = InMemoryBroker()
    type_ = unique("fleet-at-once")
    vnfm = Vnfm(broker, type_)
    await vnfm.start()
    declaring = most = 0
    declare = EmsAgent._declare_and_consume

    async def counted(self: EmsAgent) -> None:
        nonlocal declaring, most
        declaring += 1
        most = max(most, declaring)
        await asyncio.sleep(0.01)
        declaring -= 1
        await declare(self)

    monkeypatch.setattr(EmsAgent, "_declare_and_consume", counted)
    transport = InMemoryTransport(broker)
    await transport.connect()
    fleet = EmsFleet(EmsConfig(hostname="at", type=type_, root=str(tmp_path)), 10, transport=transport)
    try:
        await fleet.start()
        assert most == 4 and all(a._started for a in fleet.agents)
        registered = sorted(json.loads(m.body)["hostname"] for m in vnfm.registrations)
        assert registered == sorted(f"at-{i}" for i in range(1, 11))
    finally:
        await fleet.stop()

    async def refused(self: EmsAgent) -> None:
        raise RuntimeError(f"{self.hostname} refused")

    monkeypatch.setattr(EmsAgent, "_declare_and_consume", refused)
    monkeypatch.setattr(agent_module, "with_backoff", lambda call, **_: call())
    fleet = EmsFleet(EmsConfig(hostname="no", type=type_, root=str(tmp_path / "no")), 3, transport=transport)
    try:
        with pytest.raises(RuntimeError, match="refused"):
            await fleet.start()
    finally:
        await fleet.stop()
        await transport.close()
        await vnfm.transport.close()


async def test_memory_url_transport_is_opened_by_the_agent(tmp_path: Path) -> None:
    name = unique("membroker")
    vnfm = Vnfm(InMemoryBroker.named(name), "memurl")
    await vnfm.start()
    agent = EmsAgent(EmsConfig(hostname="m-1", type="memurl", broker_url=f"memory://{name}", root=str(tmp_path)))
    await agent.start()
    try:
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        assert (await vnfm.call("m-1", {"action": "NOPE"})).status == 1
    finally:
        await agent.stop()
        await vnfm.transport.close()
        InMemoryBroker.reset(name)


class BusyBrokerTransport(InMemoryTransport):
    """A broker that times out the first ``failures`` queue declarations (as RabbitMQ deleting 10,000
    queues did in the bench: ``cannot declare queue ...: timed out``)."""

    def __init__(self, broker: InMemoryBroker, failures: int) -> None:
        super().__init__(broker)
        self.failures = failures

    async def declare_queue(self, name: str, **flags: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TransportError(f"cannot declare queue {name!r}: timed out")
        await super().declare_queue(name, **flags)


async def test_a_declaration_that_times_out_at_start_is_tried_again(
        env: tuple[Vnfm, InMemoryBroker, EmsConfig], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, ``start()`` raised and ``gvnfm ems`` exited; now it backs off (1 s, doubled, at most
    ``reconnect_max``) as for a connection, logs each failure, and the agent registers and answers."""
    vnfm, broker, cfg = env
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def quick_sleep(delay: float, *args: Any) -> Any:
        slept.append(delay)
        return await real_sleep(0, *args)

    monkeypatch.setattr("gvnfm.ems.agent.asyncio.sleep", quick_sleep)
    transport = BusyBrokerTransport(broker, failures=3)
    await transport.connect()
    cfg.reconnect_max = 2.0
    agent = EmsAgent(cfg, transport=transport)
    await agent.start()
    try:
        assert slept[:3] == [1.0, 2.0, 2.0]
        assert caplog.text.count("event=ems_consume_failed") == 3 and "timed out" in caplog.text
        await asyncio.wait_for(vnfm.registered.wait(), 5)
        assert "unknown action" in (await vnfm.call(cfg.hostname, {"action": "NOPE"})).err
    finally:
        await agent.stop()
