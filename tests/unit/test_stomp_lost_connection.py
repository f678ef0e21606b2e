"""StompTransport losing its connection, against a fake stomp.py connection (no broker, no timing): an
operation waits for the restore of a new connection (its queues and consumers re-made); a connection
whose restore fails is forgotten as any lost connection is, and the next RPC gets a reply address of the
live connection. The restore re-makes many queues at once, and its first failure is the reconnection's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import stomp

from gvnfm.transport import Delivery
from gvnfm.transport import stomp as stomp_transport
from gvnfm.transport.stomp import StompTransport

Match = Callable[[str, dict[str, str]], bool]


def _never(cmd: str, headers: dict[str, str]) -> bool:
    return False


@dataclass
class Script:
    """What one connection (1, 2, ... in the order opened) does with the frames it is sent."""

    #: a frame whose RECEIPT is held until an RPC request (a SEND with ``reply-to``) is sent (not held
    #: once one was sent)
    hold: Match = _never
    #: a frame whose sending fails (the socket went)
    fail: Match = _never
    #: answer an RPC request on the reply destination, if subscribed on this connection
    answer: bool = True


@dataclass
class FakeBroker:
    """Stands for ``stomp.Connection12``: an ActiveMQ (its reply queues are subscribed explicitly, each
    of one connection) that answers every RPC request with ``pong``."""

    scripts: dict[int, Script] = field(default_factory=dict)
    conns: list[FakeConnection] = field(default_factory=list)

    def connection(self, *args: Any, **kwargs: Any) -> FakeConnection:
        conn = FakeConnection(self.scripts.get(len(self.conns) + 1, Script()))
        self.conns.append(conn)
        return conn


class FakeConnection:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener: Any = None
        self.frames: list[tuple[str, dict[str, str]]] = []
        #: destination -> subscription id
        self.subs: dict[str, str] = {}
        self.held: list[str] = []
        self.requested = False
        self.transport = SimpleNamespace(disconnect_socket=lambda: None)

    def set_ssl(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_listener(self, name: str, listener: Any) -> None:
        self.listener = listener

    def connect(self, *args: Any, **kwargs: Any) -> None:
        self.listener.on_connected(SimpleNamespace(headers={"server": "ActiveMQ/5.18.3"}, body=b""))

    def disconnect(self) -> None:
        pass

    def lose(self) -> None:
        """The socket went (stomp.py's reader thread says so)."""
        self.listener.on_disconnected()

    def sent(self, cmd: str) -> list[dict[str, str]]:
        return [h for c, h in self.frames if c == cmd]

    def send_frame(self, cmd: str, headers: dict[str, str], body: bytes = b"") -> None:
        self.frames.append((cmd, dict(headers)))
        if self.script.fail(cmd, headers):
            raise OSError("connection reset")
        if cmd == "SUBSCRIBE":
            self.subs[headers["destination"]] = headers["id"]
        receipt = headers.get("receipt")
        if receipt is not None:
            if self.script.hold(cmd, headers) and not self.requested:
                self.held.append(receipt)
            else:
                self._receipt(receipt)
        if cmd == "SEND" and "reply-to" in headers:
            self.requested = True
            held, self.held = self.held, []
            for rid in held:
                self._receipt(rid)
            sub = self.subs.get(headers["reply-to"])
            if self.script.answer and sub is not None:
                self.listener.on_message(SimpleNamespace(body=b"pong", headers={
                    "subscription": sub, "destination": headers["reply-to"], "message-id": f"m-{len(self.frames)}",
                    "correlation-id": headers["correlation-id"]}))

    def release(self) -> None:
        """The broker answers the frames whose receipts it held."""
        held, self.held = self.held, []
        for rid in held:
            self._receipt(rid)

    def _receipt(self, rid: str) -> None:
        self.listener.on_receipt(SimpleNamespace(headers={"receipt-id": rid}, body=b""))


@pytest.fixture
async def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()
    monkeypatch.setattr(stomp, "Connection12", fake.connection)
    return fake


@pytest.fixture
async def transport(broker: FakeBroker) -> AsyncIterator[StompTransport]:
    t = StompTransport("stomp://guest:guest@fake-broker:61613/", reconnect_initial=0.01, reconnect_max=0.01,
                       connect_timeout=30, publish_timeout=30)
    await t.connect()

    async def handle(delivery: Delivery) -> None:
        await delivery.ack()

    await t.declare_queue("work", durable=True)
    await t.consume("work", handle)
    try:
        yield t
    finally:
        await t.close()


async def test_an_rpc_started_during_a_restore_waits_for_it_and_goes_on_the_live_connection(
        broker: FakeBroker, transport: StompTransport) -> None:
    """Connection 1 goes; on connection 2 the restore waits (the receipt of re-declaring ``work``) while an
    RPC starts, then fails re-making the consumer: connection 2 is dropped, connection 3 is fine. The RPC
    waited for a restored connection: nothing was sent on connection 2, and the reply address of
    connection 1 was forgotten with it."""
    assert await transport.rpc("vnfm", b"ping", timeout=5) == b"pong"     # a reply address on connection 1
    broker.scripts[2] = Script(hold=lambda cmd, h: cmd == "UNSUBSCRIBE",
                               fail=lambda cmd, h: cmd == "SUBSCRIBE" and h["id"].startswith("c-"))
    broker.conns[0].lose()
    await _until(lambda: len(broker.conns) == 2 and bool(broker.conns[1].held))
    call = asyncio.create_task(transport.rpc("vnfm", b"ping", timeout=5))
    for _ in range(20):
        await asyncio.sleep(0)
    second = broker.conns[1]
    assert not call.done() and not second.sent("SEND")     # it waits for the restore
    second.release()
    assert await call == b"pong"
    live = broker.conns[-1]
    assert len(broker.conns) == 3 and not second.sent("SEND")
    assert second.sent("SUBSCRIBE")[-1]["id"].startswith("c-")      # the restore failed there
    assert live.sent("SEND")[-1]["reply-to"] in live.subs


async def _until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.005)


async def _with_queues(t: StompTransport, count: int) -> None:
    async def handle(delivery: Delivery) -> None:
        await delivery.ack()

    for i in range(count):
        await t.declare_queue(f"q{i}", durable=True)
        await t.consume(f"q{i}", handle)


def _consuming_on(conn: FakeConnection, t: StompTransport) -> bool:
    ids = set(conn.subs.values())
    return all(c.sub_ids and set(c.sub_ids) <= ids for c in t._consumers)


async def test_a_reconnection_restores_many_queues_at_once(broker: FakeBroker, transport: StompTransport) -> None:
    """The SUBSCRIBEs of ``RESTORE_IN_FLIGHT`` queues go out before the broker has confirmed any (one queue
    after the other, 1,000 agents' queues took 4.3 s); each queue's own frames still in order."""
    await _with_queues(transport, 40)
    broker.scripts[2] = Script(hold=lambda cmd, h: cmd == "SUBSCRIBE")
    broker.conns[0].lose()
    await _until(lambda: len(broker.conns) == 2)
    second = broker.conns[1]
    await _until(lambda: len(second.held) >= stomp_transport.RESTORE_IN_FLIGHT)
    assert not second.sent("UNSUBSCRIBE") and transport.reconnects == 0   # nothing confirmed yet
    while transport.reconnects == 0:
        second.release()
        await asyncio.sleep(0.005)
    assert len(broker.conns) == 2 and _consuming_on(second, transport)
    for i in range(40):          # a queue is declared (SUBSCRIBE, UNSUBSCRIBE) before it is consumed
        frames = [(c, h["destination"] if c == "SUBSCRIBE" else h["id"]) for c, h in second.frames
                  if h.get("destination", "").endswith(f"q{i}") or c == "UNSUBSCRIBE"]
        declared = next(n for n, (c, d) in enumerate(frames) if c == "SUBSCRIBE" and "Consumer." in d)
        consumed = next(n for n, (c, d) in enumerate(frames) if c == "SUBSCRIBE" and d == f"/queue/q{i}")
        assert declared < consumed


async def test_a_restore_that_fails_for_one_queue_is_tried_again_on_a_new_connection(
        broker: FakeBroker, transport: StompTransport, caplog: pytest.LogCaptureFixture) -> None:
    await _with_queues(transport, 40)
    broker.scripts[2] = Script(fail=lambda cmd, h: cmd == "SUBSCRIBE" and h["destination"] == "/queue/q7")
    caplog.set_level("INFO", logger="gvnfm.transport.stomp")
    broker.conns[0].lose()
    await _until(lambda: transport.reconnects == 1)
    assert len(broker.conns) == 3 and _consuming_on(broker.conns[2], transport)
    failed = [r.getMessage() for r in caplog.records if "event=stomp_restore_failed" in r.getMessage()]
    assert len(failed) == 1 and "cannot consume from 'q7'" in failed[0]
