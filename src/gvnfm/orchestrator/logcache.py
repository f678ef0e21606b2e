"""The script logs of VNFCs as last fetched (LOG_REQUEST), so that ``logs --follow`` asks the VNFM only when a
log may have changed. Invariants:

- per hostname a version that changes whenever the VNFC's script log may have (``changed``: a progress
  update, an answered or failed action of its VNFR); a reader passes back the version it saw (``since``);
- a cached answer is given again only for the current version, if fetched ``settle`` s after the last
  change (the VNFM may still be storing the step) and younger than ``max_age`` s;
- an answer is cached only if nothing changed while it was being fetched.

No I/O; ``clock`` is ``time.monotonic`` unless a test gives another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

Logs = dict[str, list[str]]


class LogCache:
    def __init__(self, *, settle: float = 1.0, max_age: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settle = settle
        self.max_age = max_age
        self.clock = clock
        #: per hostname: (log version, time it changed)
        self._marks: dict[str, tuple[int, float]] = {}
        #: per hostname: (log version, time fetched, logs) of the last answer
        self._cache: dict[str, tuple[int, float, Logs]] = {}

    def changed(self, hostnames: Iterable[str]) -> None:
        at = self.clock()
        for h in hostnames:
            self._marks[h] = (self._marks.get(h, (0, 0.0))[0] + 1, at)

    def version(self, hostname: str) -> int:
        """Changes whenever the script log of ``hostname`` may have changed."""
        return self._marks.get(hostname, (0, 0.0))[0]

    def cached(self, hostname: str, since: int | None) -> Logs | None:
        """The last answer for ``hostname`` if it may be given again to a reader that saw version ``since``."""
        version, changed_at = self._marks.get(hostname, (0, 0.0))
        cached = self._cache.get(hostname)
        if since is None or cached is None or not since == version == cached[0]:
            return None
        fetched_at = cached[1]
        if fetched_at - changed_at >= self.settle and self.clock() - fetched_at < self.max_age:
            return cached[2]
        return None

    def keep(self, hostname: str, version: int, fetched_at: float, logs: Logs) -> None:
        """Cache ``logs``, fetched from ``fetched_at`` on while the version was ``version``, unless the log
        changed meanwhile."""
        if self.version(hostname) == version:
            self._cache[hostname] = (version, fetched_at, logs)
