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
        if what == "converted":        # a transport that turns a cancellation into an error of its own
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise TransportError("the request channel closed") from None
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


async def test_a_registration_while_no_command_is_waiting_sends_nothing_more() -> None:
    # between a lost connection and the next send nothing is in flight: the next send goes to the EMS anyway
    transport = ScriptedRpc(["lost", "answer"])
    client = EmsClient(transport, timeout=30, retry_pause=0.3)
    again = asyncio.create_task(registers_soon(client, "vm-1", 0.1))    # during the pause
    reply = await client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:p")
    await again
    assert reply.status == 0 and len(transport.calls) == 2


async def test_the_callers_cancellation_is_not_taken_for_a_registration() -> None:
    # the wake-up cancels the caller's wait and takes it back; a cancellation of the caller's own, arriving
    # with it, must still end the send
    transport = ScriptedRpc(["dropped"])
    client = EmsClient(transport, timeout=30, retry_pause=0.05)
    sending = asyncio.create_task(client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:c"))
    await asyncio.sleep(0.05)
    client.host_registered("vm-1")
    sending.cancel()
    done, _ = await asyncio.wait({sending}, timeout=2)
    assert done and sending.cancelled()
    assert len(transport.calls) == 1 and client._recovering == {}


async def test_an_outer_time_limit_still_ends_a_send_that_was_woken() -> None:
    # asyncio.timeout counts the task's cancellations: the ones the client takes back must not confuse it
    transport = ScriptedRpc(["dropped"])
    client = EmsClient(transport, timeout=30, retry_pause=0.05)
    again = asyncio.create_task(registers_soon(client, "vm-1", 0.05))
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(0.3):
            await client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:t")
    except TimeoutError:
        pass
    else:
        raise AssertionError("the outer time limit did not end the send")
    await again
    assert asyncio.get_running_loop().time() - started < 2
    assert len(transport.calls) == 2 and client._recovering == {}
    assert asyncio.current_task().cancelling() == 0   # type: ignore[union-attr]


async def test_a_wake_up_the_transport_turned_into_an_error_is_withdrawn() -> None:
    transport = ScriptedRpc(["converted", "answer"])
    client = EmsClient(transport, timeout=30, retry_pause=0.05)
    again = asyncio.create_task(registers_soon(client, "vm-1", 0.05))
    reply = await client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:w")
    await again
    assert reply.status == 0 and len(transport.calls) == 2
    assert asyncio.current_task().cancelling() == 0   # type: ignore[union-attr]
    await asyncio.sleep(0)   # no cancellation left pending on this task


async def test_the_copy_of_a_registration_that_woke_a_command_sends_it_no_second_time() -> None:
    # a registration can reach the VNFM twice (its queue, and the broadcast to the workers): the copy arrives
    # during the pause before the command is sent again, and is not taken for another registration
    transport = ScriptedRpc(["dropped", "answer"], delay=0.05)
    client = EmsClient(transport, timeout=30, retry_pause=0.1)
    first = asyncio.create_task(registers_soon(client, "vm-1", 0.1))
    copy = asyncio.create_task(registers_soon(client, "vm-1", 0.12))
    reply = await client.send("vm-1", {"action": "EXECUTE"}, correlation_id="op:b")
    await asyncio.gather(first, copy)
    assert reply.status == 0 and transport.calls == [("vnfm.vm-1.actions", "op:b")] * 2
