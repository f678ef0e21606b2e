"""``gvnfm vnfm``: run the VNF manager service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gvnfm.logs import setup_logging
from gvnfm.ops.health import Health
from gvnfm.ops.http import OpsServer
from gvnfm.ops.signals import run_until_signalled
from gvnfm.transport import BROKER_SCHEMES
from gvnfm.vnfm.settings import VnfmSettings, describe_settings, load_settings, settings_sources

if TYPE_CHECKING:
    from gvnfm.transport import Transport

log = logging.getLogger("gvnfm.vnfm")


def ems_connection_url(settings: VnfmSettings) -> str | None:
    """The broker URL of the VNFM's EMS-side connection (registrations, EMS commands), or None to use
    the bootstrap/NFVO connection. ``--ems-broker`` when given; else, as the reference's registration
    listener (§2.1), the broker with the EMS credentials (``vnfm.ems.username``/``password``, the
    ones written into every VM's user-data)."""
    from gvnfm.transport import url_with_credentials

    if settings.ems_broker:
        return None if settings.ems_broker == settings.broker else settings.ems_broker
    if not settings.broker.startswith(BROKER_SCHEMES):
        return None
    url = url_with_credentials(settings.broker, settings.ems_username, settings.ems_password)
    return None if url == url_with_credentials(settings.broker, *_credentials(settings.broker)) else url


def _credentials(url: str) -> tuple[str, str]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return unquote(parts.username or "guest"), unquote(parts.password or "guest")


async def open_ems_transport(settings: VnfmSettings) -> Transport | None:
    """Connect the EMS side (see :func:`ems_connection_url`). EMS credentials left at their defaults
    that the broker refuses fall back to the bootstrap connection (a warning says so: the VMs' EMSs,
    which get the same credentials, will be refused too); configured ones that fail are an error."""
    from gvnfm.transport import TransportError, open_transport
    from gvnfm.transport.amqp import safe_url

    url = ems_connection_url(settings)
    if url is None:
        return None
    transport = open_transport(url, exchange=settings.exchange)
    try:
        await transport.connect()
    except TransportError as exc:
        configured = {"ems_broker", "ems_username", "ems_password"} & settings.model_fields_set
        if configured:
            raise
        log.warning("event=ems_credentials_refused url=%s error=%r; EMS traffic uses the broker connection "
                    "(set vnfm.ems.username/password to credentials the broker accepts)", safe_url(url), str(exc))
        return None
    log.info("event=ems_connection url=%s", safe_url(url))
    return transport


STOP_GRACE = 0.8   # seconds operations in flight get to finish on a stop; then they are left to resume


async def run_vnfm(settings: VnfmSettings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set. Every phase (connecting, registering with the NFVO, serving) ends
    as soon as ``stop`` is set; operations in flight are cancelled unanswered and unacknowledged, so
    the broker hands them to another worker (or this one, restarted), which resumes them."""
    from gvnfm.ops.signals import until_stopped
    from gvnfm.private import private_dir
    from gvnfm.store.sql import open_store
    from gvnfm.transport import open_transport, url_with_credentials
    from gvnfm.vnfm.service import VnfmService

    private_dir(settings.state_dir)
    stop = stop or asyncio.Event()
    health = Health()
    http = OpsServer(settings.http_listen, health) if settings.http_listen else None
    store = None
    transport = open_transport(settings.broker, exchange=settings.exchange)
    ems_transport: Transport | None = None
    opened: list[Transport] = []
    service: VnfmService | None = None
    try:
        if http is not None:
            await http.start()
        finished, store = await until_stopped(stop, open_store(settings.db, settings.state_dir))
        if not finished:
            return
        add_health_checks(health, lambda: service, transport, store)
        watch_reconnects(transport)
        log.info("event=vnfm_connecting broker=%s", safe_broker(settings.broker))
        if not (await until_stopped(stop, transport.connect()))[0]:
            return
        finished, ems_transport = await until_stopped(stop, open_ems_transport(settings))
        if not finished:
            return
        if ems_transport is not None:
            watch_reconnects(ems_transport)

        async def reconnect(user: str, password: str) -> Transport | None:
            if not settings.broker.startswith(BROKER_SCHEMES):
                return None
            url = url_with_credentials(settings.broker, user, password)
            if url == settings.broker:
                return None
            t = open_transport(url, exchange=settings.exchange)
            await t.connect()
            opened.append(t)
            watch_reconnects(t)
            return t

        service = VnfmService(settings, transport=transport, store=store, ems_transport=ems_transport,
                              reconnect=reconnect)
        try:
            started, _ = await until_stopped(stop, service.start())
        except Exception:  # not registered after all the tries, ...: leave the store clean, then fail
            with contextlib.suppress(Exception):
                await service.stop(grace=0)
            raise
        if not started:   # a stop request during start-up (registration retries) ends it at once
            log.info("event=vnfm_stopped_while_starting")
            return
        health.set_ready(True)
        await stop.wait()
        health.set_ready(False, "stopping")
        await service.stop(grace=STOP_GRACE)
    finally:
        if http is not None:
            await http.stop()
        for t in opened:
            await t.close()
        if ems_transport is not None:
            await ems_transport.close()
        await transport.close()
        if store is not None:
            await store.close()


def safe_broker(url: str) -> str:
    from gvnfm.transport.amqp import safe_url

    return safe_url(url) if "://" in url and not url.startswith("memory://") else url


def watch_reconnects(transport: Transport) -> None:
    from gvnfm.ops.metrics import BROKER_RECONNECTS

    async def counted() -> None:
        BROKER_RECONNECTS.inc()

    transport.on_reconnect(counted)


def add_health_checks(health: Health, service: Callable[[], Any], transport: Transport, store: Any) -> None:
    """/healthz: the broker connection (the one in use for the NFVO), the store (a read), the NFVO
    registration (answered, when the VNFM registers)."""

    def broker() -> str | None:
        svc = service()
        t = svc.transport if svc is not None else transport
        return None if getattr(t, "connected", True) else "not connected to the broker (reconnecting)"

    async def store_check() -> str | None:
        await store.latest_operation("healthz-probe")
        return None

    def registration() -> str | None:
        svc = service()
        if svc is None:
            return "not started yet"
        if not health.ready:
            return "not registered with the NFVO yet" if svc.settings.register_with_nfvo else "starting"
        return None

    health.add("broker", broker)
    health.add("store", store_check)
    health.add("nfvo_registration", registration)


def settings_or_exit(config: Path | None, overrides: dict[str, object]) -> VnfmSettings:
    """The settings, or exit 2 with one line per problem (unknown key, unresolved ${...}, bad value)."""
    from pydantic import ValidationError

    from gvnfm.configfile import ConfigFileError

    try:
        return load_settings(config, overrides)
    except ConfigFileError as exc:
        typer.echo(f"gvnfm vnfm: {exc}", err=True)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            typer.echo(f"gvnfm vnfm: setting {where}: {err['msg']}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("vnfm")
    def vnfm(
        config: Path | None = typer.Option(None, "--config", "-c", help="properties file (reference or gvnfm keys)"),
        broker: str | None = typer.Option(None, "--broker", help="amqp://..., stomp://... or memory://name"),
        ems_broker: str | None = typer.Option(None, "--ems-broker", help="broker URL for EMS traffic (amqp:// or stomp://)"),
        endpoint: str | None = typer.Option(None, "--endpoint", help="NFVO queue / routing key (default generic)"),
        type_: str | None = typer.Option(None, "--type", help="VNFM type (default generic)"),
        db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default SQLite in the state dir)"),
        state_dir: Path | None = typer.Option(None, "--state-dir"),
        log_level: str | None = typer.Option(None, "--log-level"),
        concurrency: int | None = typer.Option(None, "--concurrency", help="VNFCs of one step in parallel"),
        ems_start_timeout: float | None = typer.Option(None, "--ems-start-timeout"),
        script_timeout: float | None = typer.Option(None, "--script-timeout"),
        operation_timeout: float | None = typer.Option(None, "--operation-timeout"),
        no_register: bool = typer.Option(False, "--no-register", help="do not register with an NFVO"),
        http: str | None = typer.Option(None, "--http", help="serve /healthz, /readyz, /metrics on HOST:PORT"),
        log_format: str | None = typer.Option(None, "--log-format", help="text (logfmt, default) or json"),
        check_config: bool = typer.Option(False, "--check-config",
                                          help="print the effective settings (secrets masked) and exit"),
    ) -> None:
        """Run the VNF manager: consume the NFVO's commands and drive the EMSs."""
        overrides: dict[str, object] = {
                     "broker": broker, "ems_broker": ems_broker, "endpoint": endpoint, "type": type_, "db": db,
                     "state_dir": state_dir, "log_level": log_level, "concurrency": concurrency,
                     "ems_start_timeout": ems_start_timeout, "script_timeout": script_timeout,
                     "operation_timeout": operation_timeout, "http_listen": http, "log_format": log_format}
        if no_register:
            overrides["register_with_nfvo"] = False
        setup_logging("INFO")                     # until the settings say otherwise
        settings = settings_or_exit(config, overrides)
        if check_config:
            typer.echo(describe_settings(settings, settings_sources(config, overrides)))
            raise typer.Exit(0)
        setup_logging(settings.log_level, fmt=settings.log_format)
        run_until_signalled(run_vnfm, settings)
