"""EmsClient: a command in flight is sent again when its EMS registers again (the broker dropped the
retry published before the EMS had re-declared its queue, or the command went with the auto-delete
queue of an EMS that restarted); the EMS answers the copy without running the script twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gvnfm.transport import RpcTimeout, TransportError
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vnfm.ems_client import EmsClient

REPLY = json.dumps({"output": "done", "err": "", "status": 0}).encode()


class ScriptedRpc(InMemoryTransport):
    """rpc() answers as scripted per call: "lost" (TransportError), "dropped" (no answer), or
    "answer" after ``delay``."""

    def __init__(self, script: list[str], delay: float = 0.0) -> None:
        super().__init__(InMemoryBroker())
        self.script = script
        self.delay = delay
        self.calls: list[tuple[str, str | None]] = []

    async def rpc(self, routing_key: str, body: bytes, *, timeout: float | None, exchange: str | None = None,
                  correlation_id: str | None = None) -> bytes:
        self.calls.append((routing_key, correlation_id))
        what = self.script[min(len(self.calls), len(self.script)) - 1]
        if what == "lost":
            raise TransportError("connection lost")
        if what == "dropped":          # as the real transports: no answer within the timeout
            await asyncio.sleep(timeout if timeout is not None else 3600)
            raise RpcTimeout(f"no reply within {timeout} s")
        await asyncio.sleep(self.delay)
        return REPLY


async def registers_soon(client: EmsClient, hostname: str, after: float) -> None:
    await asyncio.sleep(after)
    client.host_registered(hostname)


async def test_a_command_that_met_a_lost_connection_is_resent_when_its_ems_registers_again() -> None:
    transport = ScriptedRpc(["lost", "dropped", "answer"])
    client = EmsClient(transport, timeout=30, retry_pause=0.05)
    other = asyncio.create_task(registers_soon(client, "vm-2", 0.2))      # another host: no effect
    again = asyncio.create_task(registers_soon(client, "vm-1", 0.3))
    reply = await asyncio.wait_for(client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:step"), 5)
    await asyncio.gather(other, again)
    assert (reply.status, reply.output) == (0, "done")
    assert transport.calls == [("vnfm.vm-1.actions", "op:step")] * 3
    assert client._recovering == {}


async def test_a_command_in_flight_is_resent_once_when_its_ems_registers_again() -> None:
    # the EMS restarted while the command was in flight: its queue (auto-delete) went with the command
    transport = ScriptedRpc(["dropped", "answer"], delay=0.05)
    client = EmsClient(transport, timeout=30, retry_pause=0.05)
    again = asyncio.create_task(registers_soon(client, "vm-1", 0.1))
    reply = await client.send("vm-1", {"action": "SAVE_SCRIPTS"}, correlation_id="op:s")
    await again
    assert reply.status == 0 and transport.calls == [("vnfm.vm-1.actions", "op:s")] * 2
    assert client._recovering == {}


async def test_no_answer_after_a_lost_connection_ends_at_the_deadline() -> None:
    transport = ScriptedRpc(["lost", "dropped"])
    client = EmsClient(transport, timeout=0.4, retry_pause=0.05)
    reply = await client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:x")
    assert reply.status == -1 and "did not answer EXECUTE within 0.4 s" in reply.err
    calls: list[Any] = transport.calls
    assert len(calls) == 2 and client._recovering == {}
