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


class _InFlight:
    """One command in flight to a host: while ``armed`` (its task is waiting for the broker's answer),
    :meth:`wake` cancels that task, as ``asyncio.timeout`` does; :meth:`taken_back` then withdraws that
    cancellation (``Task.uncancel``) and :meth:`EmsClient.send` sends the command again. Not armed (between
    two sends), a registration changes nothing: the send about to follow goes to the EMS that registered."""

    __slots__ = ("armed", "task", "woken")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.armed = False
        self.woken = False

    def wake(self) -> None:
        if self.armed and not self.woken:
            self.woken = True
            self.task.cancel()

    def taken_back(self) -> bool:
        """After the wait, whatever it ended with: whether a wake-up had cancelled it. Its cancellation is
        withdrawn; CancelledError if the task has another, of its caller's (both may come as one)."""
        if not self.woken:
            return False
        self.woken = False
        if self.task.uncancel() > 0:
            raise asyncio.CancelledError
        return True


class EmsClient:
    def __init__(self, transport: Transport, *, timeout: float, retry_pause: float = 1.0) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retry_pause = retry_pause
        #: hostname -> the commands in flight to it (see host_registered)
        self._recovering: dict[str, set[_InFlight]] = {}
        #: the broker user of a host (host users, ``broker_users``): its replies are taken from it only
        self.user_of: Callable[[str], Awaitable[str | None]] | None = None

    def host_registered(self, hostname: str) -> None:
        """The EMS of ``hostname`` registered (again): it (re)connected or restarted. Its queue may have
        gone with it (auto-delete), and with it the commands in flight to it, or a command re-sent after
        a lost connection was published before the EMS had declared its queue again: every command in
        flight to it is sent once more, with the same correlation id (the EMS answers it from its
        result cache or from the script still running, never running it twice)."""
        for command in list(self._recovering.get(hostname, ())):
            command.wake()

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
        then is a failed reply (status -1), and so at once is a refusal for good (:class:`BrokerRefused`).

        The wait for an answer runs in the caller's task: a registration of the host cancels that wait
        (:class:`_InFlight`) rather than racing it against an event in two more tasks, which cost the
        VNFM 25–80 µs of CPU per command (docs/performance.md, fourteenth round)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        body = json.dumps(command).encode()
        task = asyncio.current_task()
        assert task is not None, "EmsClient.send runs in a task"
        in_flight = _InFlight(task)
        self._recovering.setdefault(hostname, set()).add(in_flight)
        expect = await self._expected_user(hostname)
        extra: dict[str, Any] = {"expect_user": expect} if expect is not None else {}
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    in_flight.armed = True
                    try:
                        raw: bytes | None = await self.transport.rpc(ems_actions_queue(hostname), body,
                                                                     timeout=remaining, correlation_id=correlation_id,
                                                                     **extra)
                    except asyncio.CancelledError:
                        if not in_flight.taken_back():
                            raise       # the caller's own cancellation
                        raw = None      # the EMS registered again: sent again after the pause below
                    except BaseException:
                        in_flight.taken_back()   # a wake-up the transport turned into an error of its own
                        raise
                    finally:
                        in_flight.armed = False
                    if raw is not None:
                        in_flight.taken_back()   # a wake-up the answer beat
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
                # copy of the one that woke us, do not cause one more: the command is not armed)
                await asyncio.sleep(min(self.retry_pause, max(0.0, deadline - time.monotonic())))
        finally:
            waiting = self._recovering.get(hostname)
            if waiting is not None:
                waiting.discard(in_flight)
                if not waiting:
                    del self._recovering[hostname]
        return EmsReply(output="", status=-1,
                        err=f"EMS {hostname} did not answer {command.get('action')} within {limit:g} s")
