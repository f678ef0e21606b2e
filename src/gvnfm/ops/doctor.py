"""``gvnfm doctor``: why an EMS does not register, or why the NFVO does not see the VNFM.

Each check gives one :class:`Verdict` (OK / WARN / FAIL / SKIP, one line, and the fix). The checks
only read: they open AMQP connections and channels, declare queues and the exchange passively, and
re-declare an existing one with the expected flags only to compare them (a re-declaration with the
same flags changes nothing; with others the broker refuses it and nothing changes either).

:func:`ems_wait_diagnosis` is the part that needs no broker: the VNFM logs it once when an
INSTANTIATE has waited half its EMS deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from gvnfm.catalogue.queues import NFVO_REGISTRATION_QUEUE, ems_register_queue
from gvnfm.transport import url_with_credentials
from gvnfm.transport.amqp import safe_url
from gvnfm.vnfm.settings import VnfmSettings

LOG_TAIL = 5
TIMEOUT = 5.0


@dataclass
class Verdict:
    status: str          # OK, WARN, FAIL, SKIP
    check: str
    line: str
    fix: str = ""

    def render(self) -> str:
        return f"{self.status:<4} {self.check}: {self.line}" + (f" -- fix: {self.fix}" if self.fix else "")


def _broker_parts(url: str) -> tuple[str, int, str, str]:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    return parts.hostname or "localhost", parts.port or 5672, vhost, unquote(parts.username or "guest")


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def ems_wait_diagnosis(*, missing: Iterable[str], registered: int, endpoint: str, broker_ip: str, broker_port: int,
                       vhost: str, ems_user: str) -> str:
    """One line: which hosts are silent, and what their EMS was told (the usual causes)."""
    missing = sorted(missing)
    hints = []
    if is_loopback(broker_ip):
        hints.append(f"the EMSs were told to reach the broker at {broker_ip}, which on a VM is the VM itself "
                     "(set the NFVO's nfvo.rabbit.brokerIp to an address the VMs reach)")
    hints.append(f"the EMSs publish to {ems_register_queue(endpoint)} on {broker_ip}:{broker_port} vhost {vhost} "
                 f"as {ems_user} (vnfm.ems.username): check that user's password and permissions")
    hints.append("on the VM: /var/log/openbaton/ems-receiver.log and the cloud-init log")
    return (f"silent={','.join(missing[:10])}{'...' if len(missing) > 10 else ''} registered={registered} "
            f"hint={'; '.join(hints)!r}")


async def _tcp(host: str, port: int) -> str | None:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    w.close()
    with contextlib.suppress(Exception):
        await w.wait_closed()
    return None


async def _connect(url: str) -> Any:
    import aio_pika

    return await aio_pika.connect(url, timeout=TIMEOUT)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]


class Doctor:
    def __init__(self, settings: VnfmSettings, *, advertised: str | None = None, hosts_dir: Path | None = None,
                 register_queue_flags: tuple[bool, bool] | None = None) -> None:
        self.s = settings
        self.advertised = advertised
        self.hosts_dir = hosts_dir
        # the VNFM declares the register queue with the endpoint queue's flags (vnfm.service)
        self.register_queue_flags = register_queue_flags or (settings.endpoint_queue_durable,
                                                             settings.endpoint_queue_auto_delete)
        self.verdicts: list[Verdict] = []

    def add(self, status: str, check: str, line: str, fix: str = "") -> None:
        self.verdicts.append(Verdict(status, check, line, fix))

    async def run(self) -> list[Verdict]:
        s = self.s
        if not s.broker.startswith(("amqp://", "amqps://")):
            self.add("SKIP", "broker", f"{s.broker} is the in-process broker: nothing to check on the network")
            await self.check_store()
            return self.verdicts
        host, port, vhost, user = _broker_parts(s.broker)
        err = await _tcp(host, port)
        if err:
            self.add("FAIL", "broker reachable", f"{host}:{port} from this host: {err}",
                     "start RabbitMQ or correct spring.rabbitmq.host/port (or --broker)")
        else:
            self.add("OK", "broker reachable", f"{host}:{port} from this host")
        requests = await self.check_store()
        await self.check_advertised(requests, port)
        conn = await self.check_login("VNFM credentials", s.broker, user, vhost)
        ems_url = url_with_credentials(s.broker, s.ems_username, s.ems_password)
        ems_conn = conn
        if s.ems_username != user:
            ems_conn = await self.check_login("EMS credentials", ems_url, s.ems_username, vhost)
            if ems_conn is not None:
                await ems_conn.close()
        if conn is None:
            return self.verdicts
        try:
            await self.check_exchange(conn)
            await self.check_queue(conn, s.endpoint, (s.endpoint_queue_durable, s.endpoint_queue_auto_delete),
                                   "VNFM endpoint queue", "the VNFM (no worker consumes it)")
            await self.check_queue(conn, ems_register_queue(s.endpoint), self.register_queue_flags,
                                   "EMS register queue", "the VNFM (EMSs cannot register)")
            await self.check_nfvo(conn)
        finally:
            await conn.close()
        return self.verdicts

    # -- broker ---------------------------------------------------------------------------------------------
    async def check_login(self, check: str, url: str, user: str, vhost: str) -> Any:
        try:
            conn = await _connect(url)
        except Exception as exc:
            why = _why(exc)
            low = why.lower()
            if "access_refused" in low or "authentic" in low or "login" in low:
                fix = (f"rabbitmqctl change_password {user} <password> (or add_user), or correct the password "
                       "in the properties")
                self.add("FAIL", check, f"{user} refused by {safe_url(url)}: {why}", fix)
            elif "vhost" in low or "not_allowed" in low or "virtual host" in low or "handshake" in low:
                self.add("FAIL", check, f"{user} may not use vhost {vhost}: {why}",
                         f"rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'")
            else:
                self.add("FAIL", check, f"{safe_url(url)}: {why}", "see the broker's log")
            return None
        self.add("OK", check, f"{user} logs in to vhost {vhost}")
        return conn

    async def check_exchange(self, conn: Any) -> None:
        import aio_pika

        name = self.s.exchange
        try:
            ch = await conn.channel()
            await ch.declare_exchange(name, aio_pika.ExchangeType.TOPIC, passive=True)
        except Exception as exc:
            self.add("WARN", "exchange", f"{name} does not exist or cannot be read: {_why(exc)}",
                     "the NFVO or the VNFM declares it at start; check the user's configure permission")
            return
        try:
            ch = await conn.channel()
            await ch.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        except Exception as exc:
            if "PRECONDITION" in str(exc).upper():
                self.add("FAIL", "exchange", f"{name} exists with other flags than topic, durable: {_why(exc)}",
                         f"rabbitmqctl delete_exchange {name} (with the NFVO and VNFM stopped)")
            else:
                self.add("WARN", "exchange", f"{name}: cannot compare its flags: {_why(exc)}")
            return
        self.add("OK", "exchange", f"{name} is a durable topic exchange")

    async def check_queue(self, conn: Any, name: str, flags: tuple[bool, bool], check: str, consumer: str) -> None:
        vhost = _broker_parts(self.s.broker)[2]
        try:
            ch = await conn.channel()
            q = await ch.declare_queue(name, passive=True)
        except Exception as exc:
            status = "WARN" if "NOT_FOUND" in str(exc).upper() else "FAIL"
            self.add(status, check, f"{name} is absent ({_why(exc)})", f"start {consumer.split(' (')[0]}")
            return
        consumers = q.declaration_result.consumer_count
        durable, auto_delete = flags
        try:
            ch = await conn.channel()
            await ch.declare_queue(name, durable=durable, auto_delete=auto_delete)
        except Exception as exc:
            if "PRECONDITION" in str(exc).upper():
                self.add("FAIL", check, f"{name} was declared with other flags than durable={durable} "
                                        f"auto_delete={auto_delete}: {_why(exc)}",
                         f"stop every VNFM of this endpoint, rabbitmqctl delete_queue -p {vhost} {name}, start again")
                return
            self.add("WARN", check, f"{name}: cannot compare its flags: {_why(exc)}")
            return
        if consumers == 0:
            self.add("WARN", check, f"{name} has no consumer", f"start {consumer}")
        else:
            self.add("OK", check, f"{name}: flags as expected, {consumers} consumer(s)")

    async def check_nfvo(self, conn: Any) -> None:
        if not self.s.register_with_nfvo:
            self.add("SKIP", "NFVO registration", "the VNFM runs with --no-register")
            return
        try:
            ch = await conn.channel()
            q = await ch.declare_queue(NFVO_REGISTRATION_QUEUE, passive=True)
        except Exception as exc:
            self.add("FAIL", "NFVO registration", f"no {NFVO_REGISTRATION_QUEUE} queue: {_why(exc)}",
                     "start the NFVO on this broker and vhost, or point the VNFM at the NFVO's broker")
            return
        if q.declaration_result.consumer_count == 0:
            self.add("FAIL", "NFVO registration", f"nobody consumes {NFVO_REGISTRATION_QUEUE}: no NFVO answers",
                     "start the NFVO")
            return
        health = await self._vnfm_health()
        if health is None:
            self.add("OK", "NFVO registration", f"the NFVO listens on {NFVO_REGISTRATION_QUEUE}")
        elif "nfvo_registration: ok" in health:
            self.add("OK", "NFVO registration", "the running VNFM says the NFVO answered its registration")
        else:
            line = next((ln for ln in health.splitlines() if ln.startswith("nfvo_registration")), health.strip())
            self.add("FAIL", "NFVO registration", f"the running VNFM says {line}",
                     f"check the NFVO's log for the VNFM's registration ({NFVO_REGISTRATION_QUEUE})")

    async def _vnfm_health(self) -> str | None:
        if not self.s.http_listen:
            return None
        import httpx

        from gvnfm.ops.http import parse_listen

        host, port = parse_listen(self.s.http_listen)
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                return (await client.get(f"http://{host}:{port}/healthz")).text
        except httpx.HTTPError:
            return None

    async def check_advertised(self, requests: list[dict[str, Any]], port: int) -> None:
        ip = self.advertised
        source = "--advertised"
        if ip is None:
            for req in requests:
                ext = req.get("extension") or {}
                if ext.get("brokerIp"):
                    ip, source = str(ext["brokerIp"]), "the NFVO's last INSTANTIATE (brokerIp)"
                    port = int(ext.get("brokerPort") or port)
                    break
        if ip is None:
            self.add("SKIP", "broker as the EMSs see it", "no address known yet (no INSTANTIATE stored; "
                     "give --advertised IP)")
            return
        host, _, p = ip.partition(":")
        port = int(p) if p.isdigit() else port
        if is_loopback(host):
            self.add("WARN", "broker as the EMSs see it", f"{host}:{port} from {source}: on a VM that is the VM itself",
                     "set nfvo.rabbit.brokerIp on the NFVO to an address the VMs reach (fine for local hosts)")
            return
        err = await _tcp(host, port)
        if err:
            self.add("FAIL", "broker as the EMSs see it", f"{host}:{port} from {source} is not reachable from here: "
                     f"{err}", "make RabbitMQ listen there (listeners.tcp) and open the firewall for the VMs")
        else:
            self.add("OK", "broker as the EMSs see it", f"{host}:{port} from {source} answers")

    # -- store ----------------------------------------------------------------------------------------------
    async def check_store(self) -> list[dict[str, Any]]:
        """The store's view of EMSs (expected vs registered, with ages); returns the INSTANTIATE requests."""
        from sqlalchemy import select

        from gvnfm.store.sql import open_store
        from gvnfm.store.tables import ems_registrations, vnfrs

        try:
            store = await open_store(self.s.db, self.s.state_dir)
        except Exception as exc:
            self.add("FAIL", "store", f"{safe_url(self.s.db_url())}: {_why(exc)}", "check vnfm's --db / GVNFM_DB")
            return []
        try:
            ops = await store.list_operations(limit=200)
            async with store.engine.connect() as conn:
                regs = {r.hostname: r.registered_at for r in (await conn.execute(select(ems_registrations))).all()}
                records = [r.data for r in (await conn.execute(select(vnfrs.c.data))).all()]
        finally:
            await store.close()
        self.add("OK", "store", f"{safe_url(self.s.db_url())}: {len(ops)} recent operation(s)")
        expected: dict[str, str] = {}
        for op in ops:
            if op.state == "RUNNING" and op.context.allocated is not None:
                for h in _hostnames(op.context.allocated):
                    expected[h] = f"operation {op.action} {op.vnfr_name or ''}".strip()
        for data in records:
            for h in _hostnames(data):
                expected.setdefault(h, f"VNFR {data.get('name')}")
        self.ems_verdicts(expected, regs)
        return [op.request for op in ops if op.action == "INSTANTIATE"]

    def ems_verdicts(self, expected: Mapping[str, str], registered: Mapping[str, datetime]) -> None:
        if not expected:
            self.add("SKIP", "EMSs", f"no VNFC instance expected yet ({len(registered)} registration(s) stored)")
            return
        now = datetime.now(UTC)
        silent = sorted(h for h in expected if _key(h) not in registered and h not in registered)
        self.add("OK" if not silent else "FAIL", "EMSs", f"{len(expected) - len(silent)} of {len(expected)} "
                 "expected EMSs registered", "" if not silent else "see the lines below")
        for h in sorted(expected):
            at = registered.get(h) or registered.get(_key(h))
            if at is not None:
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                self.add("OK", f"EMS {h}", f"registered {(now - at).total_seconds():.0f} s ago ({expected[h]})")
                continue
            tail = self.log_tail(h)
            ends = f"; its log ends: {tail}" if tail else ""
            self.add("FAIL", f"EMS {h}", f"never registered ({expected[h]}){ends}",
                     "check the VM booted, ran its user-data and reaches the broker (see the broker checks above)")

    def log_tail(self, hostname: str) -> str:
        if self.hosts_dir is None:
            return ""
        for name in ("ems-receiver.log", "ems.out"):
            path = self.hosts_dir / hostname / "var" / "log" / "openbaton" / name
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
                return " | ".join(ln.strip() for ln in lines if ln.strip())[:1000] or "(empty)"
        return ""


def _key(hostname: str) -> str:
    from gvnfm.store.sql import key

    return key(hostname)


def _hostnames(vnfr: Mapping[str, Any]) -> list[str]:
    out = []
    for vdu in vnfr.get("vdu") or []:
        for inst in vdu.get("vnfc_instance") or []:
            if isinstance(inst, Mapping) and inst.get("hostname"):
                out.append(str(inst["hostname"]))
    return out
