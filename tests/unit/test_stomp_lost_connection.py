"""StompTransport losing its connection, against a fake stomp.py connection (no broker, no timing): a
connection lost while the queues and consumers are re-made on it (a restore that fails) is forgotten as
any lost connection is: the RPCs sent on it fail at once, the next ones get a reply address of the live
connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import stomp

from gvnfm.transport import Delivery, TransportError
from gvnfm.transport.stomp import StompTransport

Match = Callable[[str, dict[str, str]], bool]


def _never(cmd: str, headers: dict[str, str]) -> bool:
    return False


@dataclass
class Script:
    """What one connection (1, 2, ... in the order opened) does with the frames it is sent."""

    #: a frame whose RECEIPT is held until an RPC request (a SEND with ``reply-to``) is sent
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
            if self.script.hold(cmd, headers):
                self.held.append(receipt)
            else:
                self._receipt(receipt)
        if cmd == "SEND" and "reply-to" in headers:
            held, self.held = self.held, []
            for rid in held:
                self._receipt(rid)
            sub = self.subs.get(headers["reply-to"])
            if self.script.answer and sub is not None:
                self.listener.on_message(SimpleNamespace(body=b"pong", headers={
                    "subscription": sub, "destination": headers["reply-to"], "message-id": f"m-{len(self.frames)}",
                    "correlation-id": headers["correlation-id"]}))

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


async def _lose_during_restore(broker: FakeBroker, t: StompTransport) -> None:
    """Connection 1 goes; on connection 2 the restore waits (the receipt of re-declaring ``work``) until
    an RPC request went, then fails re-making the consumer: the connection is dropped, connection 3 is
    fine. Returns once the transport took the loss of connection 1 in (an RPC started now waits for a
    connection)."""
    broker.scripts[2] = Script(hold=lambda cmd, h: cmd == "UNSUBSCRIBE",
                               fail=lambda cmd, h: cmd == "SUBSCRIBE" and h["id"].startswith("c-"), answer=False)
    broker.conns[0].lose()
    while t.connected:          # the frame is handed to the loop: one turn of it
        await asyncio.sleep(0)


async def test_an_rpc_sent_during_a_restore_that_fails_fails_at_once(broker: FakeBroker,
                                                                     transport: StompTransport) -> None:
    await _lose_during_restore(broker, transport)
    with pytest.raises(TransportError, match="connection lost"):
        await transport.rpc("vnfm", b"ping", timeout=5)
    second = broker.conns[1]
    assert [h["correlation-id"] for h in second.sent("SEND")]        # it was sent on connection 2
    assert second.sent("SUBSCRIBE")[-1]["id"].startswith("c-")      # whose restore failed after it


async def test_after_a_restore_that_failed_an_rpc_gets_a_reply_address_of_the_live_connection(
        broker: FakeBroker, transport: StompTransport) -> None:
    await _lose_during_restore(broker, transport)
    with pytest.raises(TransportError):
        await transport.rpc("vnfm", b"ping", timeout=5)
    assert await transport.rpc("vnfm", b"ping", timeout=5) == b"pong"
    live = broker.conns[-1]
    assert len(broker.conns) == 3 and live.sent("SEND")[-1]["reply-to"] in live.subs
