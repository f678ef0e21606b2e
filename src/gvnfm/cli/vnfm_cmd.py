"""``gvnfm vnfm``: run the VNF manager service."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gvnfm.logs import setup_logging
from gvnfm.vnfm.settings import VnfmSettings, load_settings

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
    if not settings.broker.startswith(("amqp://", "amqps://")):
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


async def run_vnfm(settings: VnfmSettings, stop: asyncio.Event | None = None) -> None:
    from gvnfm.private import private_dir
    from gvnfm.store.sql import open_store
    from gvnfm.transport import open_transport, url_with_credentials
    from gvnfm.vnfm.service import VnfmService

    private_dir(settings.state_dir)
    store = await open_store(settings.db, settings.state_dir)
    transport = open_transport(settings.broker, exchange=settings.exchange)
    ems_transport: Transport | None = None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await transport.connect()
        ems_transport = await open_ems_transport(settings)
        opened: list[Transport] = []

        async def reconnect(user: str, password: str) -> Transport | None:
            if not settings.broker.startswith(("amqp://", "amqps://")):
                return None
            url = url_with_credentials(settings.broker, user, password)
            if url == settings.broker:
                return None
            t = open_transport(url, exchange=settings.exchange)
            await t.connect()
            opened.append(t)
            return t

        service = VnfmService(settings, transport=transport, store=store, ems_transport=ems_transport,
                              reconnect=reconnect)
        await service.start()
        await stop.wait()
        await service.stop()
        for t in opened:
            await t.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if ems_transport is not None:
            await ems_transport.close()
        await transport.close()
        await store.close()


def register(app: typer.Typer) -> None:
    @app.command("vnfm")
    def vnfm(
        config: Path | None = typer.Option(None, "--config", "-c", help="properties file (reference or gvnfm keys)"),
        broker: str | None = typer.Option(None, "--broker", help="amqp://user:pass@host:5672/ or memory://name"),
        ems_broker: str | None = typer.Option(None, "--ems-broker", help="broker URL for EMS traffic"),
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
    ) -> None:
        """Run the VNF manager: consume the NFVO's commands and drive the EMSs."""
        overrides = {"broker": broker, "ems_broker": ems_broker, "endpoint": endpoint, "type": type_, "db": db,
                     "state_dir": state_dir, "log_level": log_level, "concurrency": concurrency,
                     "ems_start_timeout": ems_start_timeout, "script_timeout": script_timeout,
                     "operation_timeout": operation_timeout}
        if no_register:
            overrides["register_with_nfvo"] = False
        settings = load_settings(config, overrides)
        setup_logging(settings.log_level)
        asyncio.run(run_vnfm(settings))
