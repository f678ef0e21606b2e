"""VnfrLocks: one operation per VNFR, all-or-none holds, Busy or wait."""

from __future__ import annotations

import asyncio

import pytest

from gvnfm.orchestrator.errors import Conflict
from gvnfm.orchestrator.locks import Busy, VnfrLocks


async def test_a_held_vnfr_refuses_or_waits() -> None:
    locks = VnfrLocks()
    order: list[str] = []
    async with locks.hold("ns", "app", "SCALE_OUT", others=["web"]):
        assert locks.holder("ns", "web") is locks.holder("ns", "app")
        with pytest.raises(Busy, match="VNFR web is busy with SCALE_OUT of VNFR app") as refused:
            async with locks.hold("ns", "web", "STOP", wait=False):
                pass
        assert isinstance(refused.value, Conflict)
        async with locks.hold("other-ns", "app", "HEAL", wait=False):    # another NSR: free
            pass

        async def waiter() -> None:
            async with locks.hold("ns", "web", "STOP"):
                order.append("stop")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        order.append("scale-out done")
    await task
    assert order == ["scale-out done", "stop"]
    assert locks.holder("ns", "app") is None and locks.holder("ns", "web") is None


async def test_holds_are_all_or_none_so_crossed_requests_do_not_deadlock() -> None:
    locks = VnfrLocks()
    done: list[str] = []

    async def op(name: str, other: str) -> None:
        async with locks.hold("ns", name, "SCALE_OUT", others=[other]):
            await asyncio.sleep(0.01)
            done.append(name)

    await asyncio.wait_for(asyncio.gather(op("a", "b"), op("b", "a"), op("a", "b")), 2)
    assert sorted(done) == ["a", "a", "b"]


async def test_a_failing_block_releases() -> None:
    locks = VnfrLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("ns", "app", "HEAL"):
            raise RuntimeError("boom")
    async with locks.hold("ns", "app", "HEAL", wait=False):
        pass
