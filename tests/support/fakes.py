"""Scripted peers for unit tests of the VNFM over the in-memory transport: an NFVO that grants and
allocates, and EMSs that record the commands they get and answer them (failing where told to).
Integration tests use the real EMS and the local orchestrator instead."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gvnfm.transport import Delivery, Transport


@dataclass
class FakeEms:
    """Answers every ``vnfm.<hostname>.actions`` command; ``fail`` maps ``script`` or
    ``script@hostname`` → (status, stderr)."""

    transport: Transport
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)
    delay: float = 0.0
    runs: dict[str, int] = field(default_factory=dict)   # correlation id -> times executed
    #: when set, EXECUTE commands wait for it before answering; ``running`` counts those waiting and
    #: ``on_running`` is called with that count each time one starts
    gate: asyncio.Event | None = None
    running: int = 0
    on_running: Callable[[int], None] | None = None

    async def add_host(self, hostname: str, endpoint: str = "generic", register: bool = True) -> None:
        queue = f"vnfm.{hostname}.actions"
        await self.transport.declare_queue(queue, auto_delete=True)

        async def on_command(delivery: Delivery, hostname: str = hostname) -> None:
            cmd = json.loads(delivery.message.body)
            self.commands.append((hostname, cmd))
            cid = delivery.message.correlation_id or ""
            self.runs[cid] = self.runs.get(cid, 0) + 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.gate is not None and cmd.get("action") == "EXECUTE":
                self.running += 1
                if self.on_running is not None:
                    self.on_running(self.running)
                try:
                    await self.gate.wait()
                finally:
                    self.running -= 1
            script = str(cmd.get("payload", "")).split(" ")[0]
            status, err = self.fail.get(f"{script}@{hostname}", self.fail.get(script, (0, "")))
            out = {"output": f"ran {cmd.get('payload')!s:.40}", "err": err, "status": status}
            await self.transport.reply(delivery.message, json.dumps(out).encode())
            await delivery.ack()

        await self.transport.consume(queue, on_command, prefetch=8)
        if register:
            await self.register(hostname, endpoint)

    async def register(self, hostname: str, endpoint: str = "generic") -> None:
        await self.transport.publish(f"ems.{endpoint}.register", json.dumps({"hostname": hostname}).encode(),
                                     exchange="")

    def executed(self, hostname: str | None = None) -> list[str]:
        return [c["payload"] for h, c in self.commands
                if c["action"] == "EXECUTE" and (hostname is None or h == hostname)]


@dataclass
class FakeNfvo:
    """The NFVO side of GRANT_OPERATION / ALLOCATE_RESOURCES / SCALING and registration."""

    transport: Transport
    ems: FakeEms | None = None
    #: creates the host of a new VNFC instance: (hostname, user-data); default: a FakeEms host
    host_factory: Callable[[str, str], Awaitable[None]] | None = None
    capacity: int = 100
    requests: list[dict[str, Any]] = field(default_factory=list)
    registered: list[dict[str, Any]] = field(default_factory=list)
    register_ems: bool = True
    #: what a registration is answered with (the NFVO creates a broker user per VNFM)
    credentials: tuple[str, str] = ("guest", "guest")
    #: the first this many registrations are answered ``null`` (the NFVO's answer to a message it cannot
    #: use; the reference VNFM retries it)
    null_answers: int = 0

    async def start(self) -> None:
        for queue in ("nfvo.manager.handling", "vnfm.nfvo.actions.reply", "vnfm.nfvo.actions"):
            await self.transport.declare_queue(queue, durable=True)
        await self.transport.consume("nfvo.manager.handling", self._on_registration)
        await self.transport.consume("vnfm.nfvo.actions.reply", self._on_request)

    async def _on_registration(self, delivery: Delivery) -> None:
        data = json.loads(delivery.message.body)
        self.registered.append(data)
        if data.get("action") == "register" and self.null_answers > 0:
            self.null_answers -= 1
            await self.transport.reply(delivery.message, b"null")
        elif data.get("action") == "register":
            user, password = self.credentials
            # ManagerCredentials as Gson writes it
            await self.transport.reply(delivery.message, json.dumps(
                {"rabbitUsername": user, "rabbitPassword": password}).encode())
        await delivery.ack()

    async def _on_request(self, delivery: Delivery) -> None:
        msg = json.loads(delivery.message.body)
        self.requests.append(msg)
        vnfr = msg["virtualNetworkFunctionRecord"]
        if msg["action"] == "GRANT_OPERATION":
            need = sum(len(v.get("vnfc") or []) for v in vnfr.get("vdu") or [])
            if need > self.capacity:
                vnfr["status"] = "ERROR"
                answer = {"action": "ERROR", "vnfr": vnfr,
                          "message": f"Not enough resources for deploying VNFR {vnfr['name']}"}
            else:
                vnfr.setdefault("id", str(uuid.uuid4()))
                vnfr["hbVersion"] = 1
                for vdu in vnfr.get("vdu") or []:
                    vdu.setdefault("id", str(uuid.uuid4()))
                    for c in vdu.get("vnfc") or []:
                        c.setdefault("id", str(uuid.uuid4()))
                answer = {"action": "GRANT_OPERATION", "grantAllowed": True,
                          "vduVim": {v["id"]: {"name": "vim-1"} for v in vnfr.get("vdu") or []},
                          "virtualNetworkFunctionRecord": vnfr}
        elif msg["action"] in ("ALLOCATE_RESOURCES", "SCALING"):
            assert "Hostname=" in (msg.get("userdata") or msg.get("userData") or "")
            n = 0
            for vdu in vnfr.get("vdu") or []:
                instances = vdu.setdefault("vnfc_instance", [])
                comps = vdu.get("vnfc") or [] if msg["action"] == "ALLOCATE_RESOURCES" else (vdu.get("vnfc") or [])[:1]
                for comp in comps:
                    n += 1
                    hostname = f"{vnfr['name']}-{random.randrange(10**6, 10**7)}"
                    instances.append({"id": str(uuid.uuid4()), "hostname": hostname, "state": "ACTIVE",
                                      "vnfComponent": {"id": comp.get("id")},
                                      "ips": [{"netName": cp["virtual_link_reference"], "ip": f"10.0.0.{n}"}
                                              for cp in comp.get("connection_point") or []],
                                      "floatingIps": []})
                    userdata = msg.get("userdata") or msg.get("userData") or ""
                    if self.host_factory is not None:
                        await self.host_factory(hostname, userdata)
                    elif self.ems is not None:
                        await self.ems.add_host(hostname, register=self.register_ems)
            # ALLOCATE_RESOURCES is answered with an OrVnfmGenericMessage of the same action, SCALING with
            # one of action SCALED (the Java NFVO's ScalingTask): both carry the VNFR under ``vnfr``
            answer = {"action": "ALLOCATE_RESOURCES" if msg["action"] == "ALLOCATE_RESOURCES" else "SCALED",
                      "vnfr": vnfr, "vnfrd": None}
        else:
            answer = {"action": "ERROR", "message": f"unexpected {msg['action']}"}
        await self.transport.reply(delivery.message, json.dumps(answer).encode())
        await delivery.ack()


@dataclass
class RefusingNfvo(FakeNfvo):
    """A FakeNfvo that answers the actions in ``refuse`` (action → message) with ERROR, the VNFR marked
    ERROR (what the NFVO does when, e.g., the VIM cannot create the VMs of an ALLOCATE_RESOURCES)."""

    refuse: dict[str, str] = field(default_factory=dict)

    async def _on_request(self, delivery: Delivery) -> None:
        msg = json.loads(delivery.message.body)
        if msg.get("action") not in self.refuse:
            await super()._on_request(delivery)
            return
        self.requests.append(msg)
        vnfr = msg["virtualNetworkFunctionRecord"]
        vnfr["status"] = "ERROR"
        answer = {"action": "ERROR", "vnfr": vnfr, "message": self.refuse[msg["action"]]}
        await self.transport.reply(delivery.message, json.dumps(answer).encode())
        await delivery.ack()
