"""transport.lifecycle's pieces free of a broker: the RPC waiter table and the handler wrapper."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gvnfm.transport.base import Delivery, Message, TransportError
from gvnfm.transport.lifecycle import ReplyWaiters, run_handler


async def test_a_reply_answers_every_waiter_of_its_id_and_only_them() -> None:
    waiters = ReplyWaiters()
    a1, a2, b = waiters.wait("a"), waiters.wait("a"), waiters.wait("b")
    assert waiters.resolve("a", b"answer")
    assert (a1.result(), a2.result()) == (b"answer", b"answer")
    assert not b.done()
    assert not waiters.resolve("a", b"again")      # late: nobody waits any more
    assert not waiters.resolve(None, b"no id")


@pytest.mark.parametrize(("forgotten", "last"), [(["x"], False), (["x", "y"], True)])
async def test_forget_says_when_the_ids_last_waiter_went(forgotten: list[str], last: bool) -> None:
    waiters = ReplyWaiters()
    futs = {"x": waiters.wait("cid", expect_user="host-1"), "y": waiters.wait("cid")}
    results = [waiters.forget("cid", futs[name]) for name in forgotten]
    assert results[-1] is last
    assert waiters.expected_user("cid") == (None if last else "host-1")
    assert not waiters.forget("cid", futs["x"])     # twice: nothing to take out


@pytest.mark.parametrize("end", ["resolve", "fail_all"])
async def test_the_expected_user_goes_with_the_reply_or_the_connection(end: str) -> None:
    waiters = ReplyWaiters()
    fut = waiters.wait("cid", expect_user="host-1")
    assert waiters.expected_user("cid") == "host-1"
    if end == "resolve":
        waiters.resolve("cid", b"ok")
        assert fut.result() == b"ok"
    else:
        waiters.fail_all(TransportError("connection lost"))
        with pytest.raises(TransportError, match="connection lost"):
            fut.result()
    assert waiters.expected_user("cid") is None


async def test_fail_all_fails_every_waiter_and_leaves_the_table_empty() -> None:
    waiters = ReplyWaiters()
    futs = [waiters.wait("a"), waiters.wait("a"), waiters.wait("b")]
    futs[0].cancel()
    waiters.fail_all(TransportError("connection closed"))
    assert futs[0].cancelled()
    assert all(isinstance(f.exception(), TransportError) for f in futs[1:])
    assert not waiters.resolve("a", b"late")


class _Recorded(Delivery):
    def __init__(self) -> None:
        self.message = Message(body=b"x", routing_key="rk")
        self.settled: list[tuple[str, bool]] = []

    async def ack(self) -> None:
        self.settled.append(("ack", False))

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(("reject", requeue))


async def test_a_failing_handler_rejects_without_requeue_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(delivery: Delivery) -> None:
        raise RuntimeError("boom")

    delivery = _Recorded()
    with caplog.at_level(logging.ERROR):
        await run_handler("q", handler, delivery)
    assert delivery.settled == [("reject", False)]
    assert "event=consumer_failed queue=q routing_key=rk" in caplog.text


async def test_a_cancelled_handler_is_cancelled_not_rejected() -> None:
    started = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(60)

    delivery = _Recorded()
    task = asyncio.get_running_loop().create_task(run_handler("q", handler, delivery))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert delivery.settled == []
