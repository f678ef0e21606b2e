"""EMS registrations: who has registered, and waiting for hostnames with a deadline.

Matching is by the exact hostname (the reference matches a numeric suffix by substring, so
``web-12345`` wakes the waiter of ``db-9123456``). A registration that arrives before anyone waits
is remembered. With several workers, registrations also arrive through the store (``poll``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable


class RegistrationBook:
    def __init__(self, poll: Callable[[list[str]], Awaitable[set[str]]] | None = None,
                 poll_interval: float = 1.0) -> None:
        self._seen: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._poll = poll
        self._poll_interval = poll_interval

    def register(self, hostname: str) -> None:
        self._seen[hostname] = time.time()
        self._changed.set()

    def forget(self, hostnames: Iterable[str]) -> None:
        for h in hostnames:
            self._seen.pop(h, None)

    def is_registered(self, hostname: str) -> bool:
        return hostname in self._seen

    async def wait(self, hostnames: Iterable[str], timeout: float) -> list[str]:
        """Wait until every hostname has registered or ``timeout`` seconds passed; returns the
        hostnames still missing (empty = all there)."""
        wanted = list(dict.fromkeys(hostnames))
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        while True:
            missing = [h for h in wanted if h not in self._seen]
            if missing and self._poll is not None and time.monotonic() >= next_poll:
                for h in await self._poll(missing):
                    self._seen.setdefault(h, time.time())
                next_poll = time.monotonic() + self._poll_interval
                missing = [h for h in wanted if h not in self._seen]
            if not missing:
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return missing
            self._changed.clear()
            wait_for = remaining if self._poll is None else min(remaining, self._poll_interval)
            try:
                await asyncio.wait_for(self._changed.wait(), wait_for)
            except TimeoutError:
                pass
