"""Assemble the parts of a local deployment: transports, store, VIM, VNFM service, local NFVO.

With no broker URL everything talks over one in-process broker and the EMS agents live in this
process (their scripts are child processes). With ``amqp://...`` the NFVO and the VNFM talk over
RabbitMQ and every host's EMS is a process of its own, as on a real VM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from gvnfm.catalogue.queues import nfvo_answers_queue
from gvnfm.local.statedir import StateDirLock
from gvnfm.orchestrator.deploy import Deployment
from gvnfm.orchestrator.loader import ServiceBundle, aload_service
from gvnfm.orchestrator.nfvo import LocalNfvo
from gvnfm.orchestrator.records import NetworkServiceRecord
from gvnfm.private import private_dir
from gvnfm.redact import mask_urls
from gvnfm.store.api import Store
from gvnfm.store.sql import open_store
from gvnfm.transport import BrokerRefused, Transport, open_transport
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vim.base import Vim
from gvnfm.vim.reaper import reap
from gvnfm.vim.watchdog import Watchdog
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings, load_settings

log = logging.getLogger(__name__)


#: VNFM settings ``gvnfm up`` uses unless an option or a GVNFM_* variable sets them
#: (the endpoint queue is auto-delete: it goes with this process, and so do its messages)
LOCAL_DEFAULTS: dict[str, Any] = {"ems_start_timeout": 120.0, "register_pause": 0.2,
                                  "endpoint_queue_auto_delete": True}
#: the orchestrator waits this much longer for an answer than the VNFM's operation deadline
REPLY_MARGIN = 30.0


@dataclass
class RuntimeOptions:
    """``None`` = not given: the VNFM setting comes from ``GVNFM_<NAME>`` (as for ``gvnfm vnfm``), else
    from ``LOCAL_DEFAULTS``, else ``VnfmSettings``'s default. Broker, state dir and
    endpoint are the local deployment's own (the orchestrator, the VNFM and the hosts share them); the
    store is ``db``, else ``GVNFM_DB``, else SQLite in the state dir; the hosts' EMS log in as ``ems_*``,
    else ``GVNFM_EMS_USERNAME``/``GVNFM_EMS_PASSWORD``, else with the broker's user."""

    state_dir: Path
    broker: str | None = None          # None = in-process broker
    vim: str = "process"               # process | netns
    capacity: int = 64
    endpoint: str = "generic"
    db: str | None = None
    ems_username: str | None = None    # netns hosts: guest works only through the VIM's loopback relay
    ems_password: str | None = None
    concurrency: int | None = None
    ems_start_timeout: float | None = None     # EMS registration deadline
    script_timeout: float | None = None
    operation_timeout: float | None = None     # one whole VNFM operation
    script_log_minutes: float | None = None    # script-log retention (0 keeps them)
    reply_timeout: float | None = None         # default: operation_timeout + REPLY_MARGIN
    environ: dict[str, str] | None = None      # None = os.environ


def vnfm_settings(o: RuntimeOptions, state_dir: Path, broker_user: str, broker_password: str) -> VnfmSettings:
    """The in-process VNFM's settings: defaults < LOCAL_DEFAULTS < GVNFM_* environment < options."""
    settings = load_settings(overrides={
        # the VNFM is a generic one (type ``generic``, what VNFDs name) on the endpoint queue given
        "broker": o.broker or "memory://", "endpoint": o.endpoint, "state_dir": state_dir,
        "db": o.db, "ems_username": o.ems_username, "ems_password": o.ems_password, "concurrency": o.concurrency,
        "ems_start_timeout": o.ems_start_timeout, "script_timeout": o.script_timeout,
        "operation_timeout": o.operation_timeout, "script_log_minutes": o.script_log_minutes,
    }, environ=o.environ)
    given = settings.model_fields_set
    local = {k: v for k, v in LOCAL_DEFAULTS.items() if k not in given}
    # the hosts' EMS log in to the broker as the orchestrator does, unless told otherwise
    if "ems_username" not in given:
        local["ems_username"] = broker_user
    if "ems_password" not in given:
        local["ems_password"] = broker_password
    return settings.model_copy(update=local)


def remove_stale_process_hosts(hosts_dir: Path) -> list[str]:
    """Hosts of a previous ``gvnfm up`` on this state dir that did not end cleanly (killed): kill what
    their scripts left running (daemons included, found by the host marker) and remove their folders.
    Called only by the state dir's lock holder: every host found then belongs to a dead owner."""
    removed: list[str] = []
    if not hosts_dir.is_dir():
        return removed
    for root in sorted(hosts_dir.iterdir()):
        if not root.is_dir():
            continue
        pids = reap(root.resolve())
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root.name)
        log.warning("event=stale_host_removed host=%s killed=%s", root.name, pids)
    return removed


async def discard_leftovers(transport: Transport, settings: VnfmSettings) -> None:
    """The VNFM queues a killed earlier run left on the broker go, with their messages, before this run
    starts: a stale INSTANTIATE is never taken by this run. A queue that a live consumer uses (another
    run or VNFM on this endpoint) refuses: this run does not start, saying why."""
    for queue in (settings.endpoint, nfvo_answers_queue(settings.endpoint)):
        try:
            dropped = await transport.delete_unused_queue(queue)
        except BrokerRefused as exc:
            raise BrokerRefused(f"the endpoint {settings.endpoint!r} is in use on this broker (another gvnfm up or "
                               f"VNFM consumes {queue!r}): {exc}") from exc
        if dropped:
            log.warning("event=stale_messages_discarded queue=%s count=%d", queue, dropped)


class LocalRuntime:
    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        self._transports: list[Transport] = []
        self.store: Store | None = None
        self.vim: Vim | None = None
        self.vnfm: VnfmService | None = None
        self.nfvo: LocalNfvo | None = None
        self.deployment: Deployment | None = None
        self.settings: VnfmSettings | None = None
        self._broker: InMemoryBroker | None = None
        #: kills the process hosts' processes once this process is gone, however it went (kill -9 too)
        self.watchdog: Watchdog | None = None
        self.lock = StateDirLock(self.state_dir)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def _transport(self) -> Transport:
        if self._broker is not None:
            t: Transport = InMemoryTransport(self._broker)
        else:
            t = open_transport(self.options.broker)
        await t.connect()
        self._transports.append(t)
        return t

    def _vim(self) -> Vim:
        o = self.options
        hosts_dir = self.state_dir / "vim"
        if o.vim == "process":
            from gvnfm.vim.process import ProcessVim

            if self._broker is not None:
                broker = self._broker
                return ProcessVim(hosts_dir, o.capacity, transport_factory=lambda: InMemoryTransport(broker))
            return ProcessVim(hosts_dir, o.capacity, broker_url=o.broker)
        if o.vim == "netns":
            from gvnfm.vim.netns import NetnsVim

            if self._broker is not None:
                raise ValueError("the netns VIM needs a real broker: pass --broker amqp://...")
            s = self.settings
            return NetnsVim(hosts_dir, o.capacity, broker_url=o.broker,
                            ems_username=s.ems_username if s is not None else o.ems_username,
                            ems_password=s.ems_password if s is not None else o.ems_password)
        raise ValueError(f"unknown VIM {o.vim!r} (process or netns)")

    async def start(self) -> None:
        o = self.options
        self.lock.acquire()     # StateDirBusy: another live `gvnfm up` owns the folder; nothing touched
        (self.state_dir / "api.json").unlink(missing_ok=True)   # a dead owner's
        private_dir(self.state_dir)
        if o.broker is None or o.broker.startswith("memory://"):
            self._broker = InMemoryBroker()
            broker_ip, broker_port, user, password = "127.0.0.1", 5672, "memory", "memory"
        else:
            parts = urlsplit(o.broker)
            broker_ip, broker_port = parts.hostname or "127.0.0.1", parts.port or 5672
            user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        settings = self.settings = vnfm_settings(o, self.state_dir, user, password)
        self.store = await open_store(settings.db, self.state_dir)
        await asyncio.to_thread(remove_stale_process_hosts, self.state_dir / "vim" / "hosts")
        if o.vim == "process":
            self.watchdog = Watchdog(self.state_dir / "vim" / "hosts")
            await asyncio.to_thread(self.watchdog.start)
        self.vim = self._vim()
        cleanup = getattr(self.vim, "cleanup_stale", None)
        if callable(cleanup):
            await cleanup()
        reply_timeout = o.reply_timeout if o.reply_timeout is not None else settings.operation_timeout + REPLY_MARGIN
        self.nfvo = LocalNfvo(await self._transport(), self.vim, broker_ip=broker_ip, broker_port=broker_port,
                              endpoint_credentials=(user, password), reply_timeout=reply_timeout)
        await self.nfvo.start()
        vnfm_transport = await self._transport()
        await discard_leftovers(vnfm_transport, settings)
        self.vnfm = VnfmService(settings, transport=vnfm_transport, store=self.store,
                                progress=self.nfvo.on_vnfm_progress, worker_id=f"up-{uuid.uuid4().hex[:8]}")
        await self.vnfm.start()
        self.deployment = Deployment(self.nfvo)
        log.info("event=runtime_started broker=%s vim=%s state_dir=%s",
                 "memory" if self._broker else mask_urls(o.broker or ""), o.vim, self.state_dir)

    async def close(self, grace: float = 5.0) -> None:
        """``grace``: seconds the VNFM's operations in flight get to end before they are cancelled unanswered."""
        if self.vnfm is not None:
            with contextlib.suppress(Exception):
                await self.vnfm.stop(grace=grace)
        if self.nfvo is not None:
            with contextlib.suppress(Exception):
                await self.nfvo.stop()
        if self.vim is not None:
            with contextlib.suppress(Exception):
                await self.vim.close()
        for t in reversed(self._transports):
            with contextlib.suppress(Exception):
                await t.close()
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self.store is not None:
            await self.store.close()
        self.lock.release()

    async def __aenter__(self) -> LocalRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- work -----------------------------------------------------------------------------------------
    async def load(self, path: Path) -> ServiceBundle:
        """Load a service into this run's catalogue (local scripts are served from the state dir)."""
        return await aload_service(path, self.state_dir / "catalogue")

    async def deploy(self, path: Path | ServiceBundle) -> NetworkServiceRecord:
        assert self.deployment is not None
        bundle = path if isinstance(path, ServiceBundle) else await self.load(path)
        return await self.deployment.deploy(bundle)

    async def teardown(self, nsr: NetworkServiceRecord, *, timeout: float | None = None) -> NetworkServiceRecord:
        assert self.deployment is not None
        return await self.deployment.teardown(nsr, timeout=timeout)

    async def report(self, nsr: NetworkServiceRecord) -> dict[str, Any]:
        """The NSR's records, and per VNFC every script run with its outcome."""
        assert self.store is not None
        data = nsr.report()
        for vnfr in data["vnfrs"]:
            # this NSR's runs only: an earlier run in the same state dir had a VNFR of that name too
            vnfr_id = (vnfr.get("record") or {}).get("id")
            ops = ({op.id for op in await self.store.list_operations(vnfr_id=vnfr_id, limit=100_000)}
                   if vnfr_id else set())
            results = await self.store.script_results(vnfr_name=vnfr["name"], limit=100_000) if ops else []
            by_host: dict[str, list[dict[str, Any]]] = {}
            for r in results:
                if r.operation_id not in ops:
                    continue
                if not r.is_script_run and r.status == 0:
                    continue
                by_host.setdefault(r.hostname, []).append({
                    "event": r.event, "script": r.script,
                    "exit_status": r.status, "stdout": r.output, "stderr": r.error,
                    "started_at": r.started_at.isoformat(), "duration": round(r.duration, 4)})
            for vnfc in vnfr["vnfc"]:
                vnfc["scripts"] = by_host.get(vnfc["hostname"], [])
        return data
