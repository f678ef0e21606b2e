"""The VNFM's side of an EMS in fault tests: the register queue, and gvnfm's EmsClient told of every
registration (it sends a command in flight once more when the EMS registers again)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from gvnfm.transport import Delivery
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.ems_client import EmsClient


class EmsClientVnfm:
    def __init__(self, url: str, endpoint: str, *, timeout: float = 120) -> None:
        self.t = AmqpTransport(url)
        self.endpoint = endpoint
        self.client = EmsClient(self.t, timeout=timeout)
        self.registered = asyncio.Event()
        #: registrations by hostname
        self.registrations: Counter[str] = Counter()

    async def start(self) -> None:
        await self.t.connect()
        queue = f"ems.{self.endpoint}.register"
        await self.t.declare_queue(queue, durable=True)
        await self.t.consume(queue, self._on_register)

    async def _on_register(self, delivery: Delivery) -> None:
        hostname = json.loads(delivery.message.body)["hostname"]
        self.registrations[hostname] += 1
        self.client.host_registered(hostname)
        self.registered.set()
        await delivery.ack()
