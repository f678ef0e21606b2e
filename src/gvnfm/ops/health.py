"""Named health checks (broker, store, NFVO registration...) for ``/healthz`` and ``/readyz``.

A check is a callable returning ``None`` when good or a short reason when not; checks never do I/O
that can hang (they read state the daemon keeps), except those marked async, bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Check = Callable[[], "str | Awaitable[str | None] | None"]


class Health:
    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout
        self._live: dict[str, Check] = {}
        self._ready = False
        self.not_ready_reason = "starting"

    def add(self, name: str, check: Check) -> None:
        self._live[name] = check

    @property
    def ready(self) -> bool:
        return self._ready

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self._ready, self.not_ready_reason = ready, reason

    async def status(self) -> dict[str, str]:
        """Check name -> ``ok`` or the reason it failed."""
        out: dict[str, str] = {}
        for name, check in self._live.items():
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, self.timeout)
            except TimeoutError:
                result = f"no answer within {self.timeout:g} s"
            except Exception as exc:
                result = f"check failed: {exc}"
            out[name] = "ok" if result is None else str(result)
        return out

    async def healthz(self) -> tuple[int, str]:
        status = await self.status()
        bad = {k: v for k, v in status.items() if v != "ok"}
        body = "\n".join(f"{k}: {v}" for k, v in status.items()) + "\n"
        return (200 if not bad else 503), ("ok\n" if not bad else "failed: " + ", ".join(bad) + "\n") + body

    async def readyz(self) -> tuple[int, str]:
        if not self._ready:
            return 503, f"not ready: {self.not_ready_reason}\n"
        code, body = await self.healthz()
        return code, ("ready\n" if code == 200 else "not ready\n") + body
