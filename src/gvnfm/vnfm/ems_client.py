"""Commands to an EMS: RPC on ``openbaton-exchange`` with routing key ``vnfm.<hostname>.actions``.

The correlation id is the step's stable id within the operation, so that a command re-sent after a
lost connection or a VNFM restart is recognised by the EMS, which returns the stored result instead
of running the script again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gvnfm.catalogue.ems import EmsReply
from gvnfm.catalogue.queues import ems_actions_queue
from gvnfm.ops import metrics
from gvnfm.transport import BrokerRefused, RpcTimeout, Transport, TransportError

log = logging.getLogger(__name__)


class EmsClient:
    def __init__(self, transport: Transport, *, timeout: float, retry_pause: float = 1.0) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retry_pause = retry_pause
        #: hostname -> events of commands to it that met a lost connection (see host_registered)
        self._recovering: dict[str, set[asyncio.Event]] = {}
        #: the broker user of a host (host users, ``broker_users``): its replies are taken from it only
        self.user_of: Callable[[str], Awaitable[str | None]] | None = None

    def host_registered(self, hostname: str) -> None:
        """The EMS of ``hostname`` registered (again): it (re)connected or restarted. Its queue may have
        gone with it (auto-delete), and with it the commands in flight to it, or a command re-sent after
        a lost connection was published before the EMS had declared its queue again: every command in
        flight to it is sent once more, with the same correlation id (the EMS answers it from its
        result cache or from the script still running, never running it twice)."""
        for event in self._recovering.get(hostname, ()):
            event.set()

    async def _expected_user(self, hostname: str) -> str | None:
        if self.user_of is None:
            return None
        try:
            return await self.user_of(hostname)
        except Exception as exc:   # the management API is down: a host user's reply is refused, not trusted
            log.warning("event=ems_host_user_unknown hostname=%s error=%r", hostname, str(exc))
            return None

    async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                   timeout: float | None = None) -> EmsReply:
        """Send one command and wait for its reply. A lost connection is retried with the same
        correlation id until the deadline (and sent again when the EMS registers again); no reply by
        then is a failed reply (status -1), and so at once is a refusal for good (:class:`BrokerRefused`)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        body = json.dumps(command).encode()
        back = asyncio.Event()
        self._recovering.setdefault(hostname, set()).add(back)
        expect = await self._expected_user(hostname)
        extra: dict[str, Any] = {"expect_user": expect} if expect is not None else {}
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    rpc = self.transport.rpc(ems_actions_queue(hostname), body, timeout=remaining,
                                             correlation_id=correlation_id, **extra)
                    raw = await _unless(rpc, back)
                    if raw is not None:
                        return EmsReply.parse(raw)
                    log.info("event=ems_resend hostname=%s correlation_id=%s reason=ems_registered_again",
                             hostname, correlation_id)
                except RpcTimeout:
                    metrics.EMS_COMMAND_TIMEOUTS.inc()
                    break
                except BrokerRefused as exc:   # the same command gets the same refusal: no retry
                    log.error("event=ems_command_refused hostname=%s correlation_id=%s error=%r",
                              hostname, correlation_id, str(exc))
                    return EmsReply(output="", status=-1, err=f"the broker refused {command.get('action')} "
                                                               f"to EMS {hostname}: {exc}")
                except TransportError as exc:
                    log.warning("event=ems_rpc_retry hostname=%s correlation_id=%s error=%r",
                                hostname, correlation_id, str(exc))
                # a pause before sending again (registrations arriving meanwhile, e.g. the broadcast
                # copy of the one that woke us, do not cause one more)
                await asyncio.sleep(min(self.retry_pause, max(0.0, deadline - time.monotonic())))
                back.clear()
        finally:
            waiting = self._recovering.get(hostname)
            if waiting is not None:
                waiting.discard(back)
                if not waiting:
                    del self._recovering[hostname]
        return EmsReply(output="", status=-1,
                        err=f"EMS {hostname} did not answer {command.get('action')} within {limit:g} s")


async def _unless(rpc: Awaitable[bytes], event: asyncio.Event) -> bytes | None:
    """The result of ``rpc``, or None (``rpc`` cancelled) if ``event`` is set first."""
    call = asyncio.ensure_future(rpc)
    woken = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({call, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        if not call.done():
            call.cancel()
    if call.done() and not call.cancelled():
        return call.result()
    await asyncio.wait({call})     # let the cancelled call clean up (its reply waiter)
    return None
