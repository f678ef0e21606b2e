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
from typing import Any

from gvnfm.catalogue.ems import EmsReply
from gvnfm.transport import RpcTimeout, Transport, TransportError

log = logging.getLogger(__name__)


def ems_queue(hostname: str) -> str:
    return f"vnfm.{hostname}.actions"


class EmsClient:
    def __init__(self, transport: Transport, *, timeout: float, retry_pause: float = 1.0) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retry_pause = retry_pause

    async def send(self, hostname: str, command: dict[str, Any], *, correlation_id: str,
                   timeout: float | None = None) -> EmsReply:
        """Send one command and wait for its reply. A lost connection is retried with the same
        correlation id until the deadline; no reply by then is a failed reply (status -1)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        body = json.dumps(command).encode()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                raw = await self.transport.rpc(ems_queue(hostname), body, timeout=remaining,
                                               correlation_id=correlation_id)
                return EmsReply.parse(raw)
            except RpcTimeout:
                break
            except TransportError as exc:
                log.warning("event=ems_rpc_retry hostname=%s correlation_id=%s error=%r",
                            hostname, correlation_id, str(exc))
                await asyncio.sleep(min(self.retry_pause, max(0.0, deadline - time.monotonic())))
        return EmsReply(output="", status=-1,
                        err=f"EMS {hostname} did not answer {command.get('action')} within {limit:g} s")
