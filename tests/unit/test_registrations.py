"""The registration book: waiting for hostnames, storms, polling the store, deadlines."""

from __future__ import annotations

import asyncio
import time

from gvnfm.vnfm.registrations import RegistrationBook


async def test_waits_until_every_hostname_registered() -> None:
    book = RegistrationBook()
    book.register("a")            # before anyone waits: remembered
    waiting = asyncio.ensure_future(book.wait(["a", "b", "c"], timeout=5))
    await asyncio.sleep(0.01)
    book.register("c")
    await asyncio.sleep(0.01)
    assert not waiting.done()
    book.register("b")
    assert await asyncio.wait_for(waiting, 1) == []


async def test_deadline_returns_the_missing_in_the_order_asked() -> None:
    book = RegistrationBook()
    book.register("b")
    started = time.monotonic()
    assert await book.wait(["d", "b", "a", "d"], timeout=0.1) == ["d", "a"]
    assert 0.09 <= time.monotonic() - started < 1


async def test_exact_hostname_match_and_several_waiters() -> None:
    book = RegistrationBook()
    first = asyncio.ensure_future(book.wait(["web-12"], timeout=5))
    second = asyncio.ensure_future(book.wait(["db-9123456", "web-12"], timeout=5))
    await asyncio.sleep(0)
    book.register("web-123")     # the reference would match this by substring
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    book.register("web-12")
    assert await asyncio.wait_for(first, 1) == []
    assert not second.done()
    book.register("db-9123456")
    assert await asyncio.wait_for(second, 1) == []
    assert not book._waiters       # waiters leave the book when they return


async def test_storm_of_registrations_wakes_the_waiter_once() -> None:
    book = RegistrationBook()
    hosts = [f"h-{i}" for i in range(5000)]
    waiting = asyncio.ensure_future(book.wait(hosts, timeout=10))
    await asyncio.sleep(0)
    (waiter,) = book._waiters
    for h in reversed(hosts):
        book.register(h)
        if h != hosts[0]:
            assert not waiter.event.is_set()
    assert waiter.event.is_set() and not waiter.missing
    assert await asyncio.wait_for(waiting, 1) == []


async def test_registrations_of_other_workers_come_from_the_poll() -> None:
    asked: list[list[str]] = []

    async def poll(missing: list[str]) -> set[str]:
        asked.append(list(missing))
        return {"b"} if len(asked) == 1 else {"c"}

    book = RegistrationBook(poll=poll, poll_interval=0.05)
    book.register("a")
    assert await asyncio.wait_for(book.wait(["a", "b", "c"], timeout=5), 2) == []
    assert asked[0] == ["b", "c"] and asked[1] == ["c"]
    assert book.is_registered("b") and book.is_registered("c")
    book.forget(["b"])
    assert not book.is_registered("b")
