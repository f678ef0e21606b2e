"""The NFVO's side of an instantiation, on raw aio-pika: answers GRANT_OPERATION (ids, VIM per VDU)
and ALLOCATE_RESOURCES (a VNFC instance per component, with the hostnames the bench chose so that
they are the EMS fleet's), and sends INSTANTIATE to the VNFM's endpoint.

Isolation on a shared broker: the bench's VNFM, fleet and NFVO use an exchange of their own, and the
NFVO consumes through a queue of its own bound with the NFVO's routing keys on that exchange, so no
other VNFM or test sees these messages.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import RpcClient, reply
from bench.timing import timed_window
from gvnfm.catalogue.queues import NFVO_NOTICE_QUEUE, NFVO_REQUEST_QUEUE

AllocatedHook = Callable[[list[str]], Coroutine[Any, Any, None]]


class BenchNfvo:
    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange = exchange
        self.client = RpcClient(url)
        self.queue = f"bench-nfvo-{uuid.uuid4().hex[:10]}"
        self.hostnames: list[str] = []
        self.hostnames_by_name: dict[str, list[str]] = {}   # VNFR name -> hostnames, for operations at once
        self.on_allocated: AllocatedHook | None = None
        self.requests: list[str] = []
        self.notifications: list[str] = []
        self.allocated_at: float | None = None
        #: when the answer to the last ``instantiate`` came (before it is parsed)
        self.answered_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> BenchNfvo:
        await self.client.open()
        channel = self.client.channel
        exchange = await channel.get_exchange(self.exchange, ensure=True)   # declared by the VNFM
        queue = await channel.declare_queue(self.queue, exclusive=True, auto_delete=True)
        for key in (NFVO_REQUEST_QUEUE, NFVO_NOTICE_QUEUE):
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def instantiate(self, endpoint: str, message: dict[str, Any], hostnames: list[str], *,
                          timeout: float) -> tuple[dict[str, Any], float]:
        """Send INSTANTIATE to ``endpoint``; the ALLOCATE answer will carry ``hostnames``.
        Returns the VNFM's reply and the seconds until it came."""
        self.hostnames = list(hostnames)
        self.allocated_at = self.answered_at = None
        body = json.dumps(message).encode()
        with timed_window():
            t0 = time.perf_counter()
            raw = await self.client.call(endpoint, body, timeout=timeout, correlation_id=f"bench-{uuid.uuid4().hex}")
            self.answered_at = time.perf_counter()
            seconds = self.answered_at - t0
        return json.loads(raw), seconds

    async def send(self, endpoint: str, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """INSTANTIATE without touching the single-operation bookkeeping (many at once); the ALLOCATE
        answer takes the hostnames from ``hostnames_by_name[<VNFR name>]``."""
        raw = await self.client.call(endpoint, json.dumps(message).encode(), timeout=timeout,
                                     correlation_id=f"bench-{uuid.uuid4().hex}")
        return json.loads(raw)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            try:
                msg = json.loads(message.body)
                action = msg.get("action", "?")
            except (ValueError, AttributeError):
                action, msg = "?", {}
            if not message.reply_to:
                self.notifications.append(action)
                return
            self.requests.append(action)
            answer = self._answer(action, msg)
            await reply(self.client.channel, message, json.dumps(answer).encode())
            if action == "ALLOCATE_RESOURCES":
                self.allocated_at = time.perf_counter()
                if self.on_allocated is not None:
                    task = asyncio.get_running_loop().create_task(self.on_allocated(list(self.hostnames)))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def _answer(self, action: str, msg: dict[str, Any]) -> dict[str, Any]:
        vnfr = msg.get("virtualNetworkFunctionRecord") or {}
        if action == "GRANT_OPERATION":
            vnfr.setdefault("id", str(uuid.uuid4()))
            vnfr["hbVersion"] = 1
            for vdu in vnfr.get("vdu") or []:
                vdu.setdefault("id", str(uuid.uuid4()))
                for comp in vdu.get("vnfc") or []:
                    comp.setdefault("id", str(uuid.uuid4()))
            return {"action": "GRANT_OPERATION", "grantAllowed": True,
                    "vduVim": {v["id"]: {"name": "bench-vim"} for v in vnfr.get("vdu") or []},
                    "virtualNetworkFunctionRecord": vnfr}
        if action == "ALLOCATE_RESOURCES":
            names = iter(self.hostnames_by_name.get(str(vnfr.get("name")), self.hostnames))
            n = 0
            for vdu in vnfr.get("vdu") or []:
                instances = vdu.setdefault("vnfc_instance", [])
                for comp in vdu.get("vnfc") or []:
                    hostname = next(names, None)
                    if hostname is None:
                        return {"action": "ERROR", "vnfr": vnfr,
                                "message": f"the bench has {len(self.hostnames)} hosts, the VNFR wants more"}
                    n += 1
                    instances.append({"id": str(uuid.uuid4()), "hostname": hostname, "state": "ACTIVE",
                                      "vnfComponent": {"id": comp.get("id")},
                                      "ips": [{"netName": "private", "ip": _ip(n)}],
                                      "floatingIps": []})
            return {"action": "ALLOCATE_RESOURCES", "vnfr": vnfr}
        return {"action": "ERROR", "message": f"the bench NFVO does not handle {action}"}


def _ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
