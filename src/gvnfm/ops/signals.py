"""SIGTERM/SIGINT for the daemons: the first signal asks the daemon to stop, a second one exits at once.

:func:`run_until_signalled` runs ``main(*args, stop=event)``. On the first signal it sets ``event``
(the daemon stops its work: operations in flight are left unacknowledged in the broker and resumable
from the store, nothing half answered) and, if ``main`` has not returned ``grace`` seconds later,
cancels it; if it still has not returned ``hard`` seconds after the signal the process exits. A second
signal exits at once. Every path exits 0: a stop asked for is not a failure (systemd's
Restart=on-failure leaves it stopped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("gvnfm.signals")

STOP_GRACE = 1.2     # seconds between the first signal and cancelling the daemon's main task
STOP_HARD = 1.8      # seconds between the first signal and leaving without further ado


def _exit_now(reason: str) -> None:
    log.warning("event=exit_now reason=%s", reason)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    os._exit(0)


def run_until_signalled(main: Callable[..., Awaitable[Any]], *args: Any, grace: float = STOP_GRACE,
                        hard: float = STOP_HARD) -> None:
    asyncio.run(_run(main, args, grace, hard))


async def _run(main: Callable[..., Awaitable[Any]], args: tuple[Any, ...], grace: float, hard: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.ensure_future(main(*args, stop=stop))
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        if len(received) > 1:
            _exit_now(f"second_signal_{sig.name}")
        log.info("event=stopping signal=%s", sig.name)
        stop.set()
        loop.call_later(grace, lambda: task.cancel() if not task.done() else None)
        loop.call_later(hard, lambda: None if task.done() else _exit_now("stop_took_too_long"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if received:
        log.info("event=stopped signal=%s", received[0])


async def until_stopped(stop: asyncio.Event, work: Awaitable[Any]) -> tuple[bool, Any]:
    """Run ``work`` unless ``stop`` is set first (then ``work`` is cancelled): (finished, result)."""
    job = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        job.cancel()
        raise
    finally:
        waiter.cancel()
    if job.done():
        return True, job.result()
    job.cancel()
    try:
        await job
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        log.debug("event=cancelled_work_failed error=%r", str(exc))
    return False, None
