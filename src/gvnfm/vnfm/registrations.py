"""EMS registrations: who has registered, and waiting for hostnames with a deadline.

Matching is by the exact hostname (the reference matches a numeric suffix by substring, so
``web-12345`` wakes the waiter of ``db-9123456``). A registration that arrives before anyone waits
is remembered. With several workers, registrations also arrive through the store (``poll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable


class _Waiter:
    __slots__ = ("event", "missing")

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing
        self.event = asyncio.Event()


class RegistrationBook:
    """Each waiter keeps the set of hostnames it still misses; a registration removes its hostname
    from those sets and wakes a waiter only when its set is empty (O(waiters) per registration, not a
    scan of every wanted hostname per registration: a storm of N registrations stays O(N))."""

    def __init__(self, poll: Callable[[list[str]], Awaitable[set[str]]] | None = None,
                 poll_interval: float = 1.0) -> None:
        self._seen: dict[str, float] = {}
        self._waiters: set[_Waiter] = set()
        self._poll = poll
        self._poll_interval = poll_interval

    def register(self, hostname: str) -> None:
        self._seen[hostname] = time.time()
        for waiter in self._waiters:
            if hostname in waiter.missing:
                waiter.missing.discard(hostname)
                if not waiter.missing:
                    waiter.event.set()

    def forget(self, hostnames: Iterable[str]) -> None:
        for h in hostnames:
            self._seen.pop(h, None)

    def is_registered(self, hostname: str) -> bool:
        return hostname in self._seen

    async def wait(self, hostnames: Iterable[str], timeout: float) -> list[str]:
        """Wait until every hostname has registered or ``timeout`` seconds passed; returns the
        hostnames still missing, in the order asked (empty = all there)."""
        wanted = list(dict.fromkeys(hostnames))
        waiter = _Waiter({h for h in wanted if h not in self._seen})
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        self._waiters.add(waiter)
        try:
            while True:
                if waiter.missing and self._poll is not None and time.monotonic() >= next_poll:
                    for h in await self._poll([h for h in wanted if h in waiter.missing]):
                        self._seen.setdefault(h, time.time())
                        waiter.missing.discard(h)
                    next_poll = time.monotonic() + self._poll_interval
                if not waiter.missing:
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [h for h in wanted if h in waiter.missing]
                wait_for = remaining if self._poll is None else min(remaining, self._poll_interval)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_for):   # no task of its own: woken one loop turn sooner
                        await waiter.event.wait()
        finally:
            self._waiters.discard(waiter)
