"""Progress updates of the orchestrator, for a live view: listeners are called synchronously with
each ``ProgressEvent``; ``EventHub.queue()`` gives an asyncio queue fed with them instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from gvnfm.orchestrator.records import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    nsr_id: str
    vnfr: str | None = None
    action: str | None = None            # NFVO action (INSTANTIATE, MODIFY, ...) or VNFM step action
    state: str | None = None             # VNFR status, or step status (running / done / failed)
    hostname: str | None = None
    event: str | None = None             # lifecycle event of a script step
    script: str | None = None
    message: str | None = None
    at: str = field(default_factory=now)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[ProgressEvent], None]


class EventHub:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def emit(self, event: ProgressEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken view must not break the deployment
                log.exception("event=progress_listener_failed")

    def queue(self, maxsize: int = 10_000) -> asyncio.Queue[ProgressEvent]:
        """A queue receiving every event from now on; when full, the oldest event is dropped."""
        q, _ = self._queue(maxsize)
        return q

    @contextlib.contextmanager
    def subscription(self, maxsize: int = 1_000) -> Iterator[asyncio.Queue[ProgressEvent]]:
        """``queue()`` for as long as the ``with`` block runs (a web page's event stream)."""
        q, put = self._queue(maxsize)
        try:
            yield q
        finally:
            self.remove(put)

    def _queue(self, maxsize: int) -> tuple[asyncio.Queue[ProgressEvent], Listener]:
        q: asyncio.Queue[ProgressEvent] = asyncio.Queue(maxsize=maxsize)

        def put(event: ProgressEvent) -> None:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(event)

        self.add(put)
        return q, put
