"""``gvnfm vnfm``: run the VNF manager service."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

from gvnfm.logs import setup_logging
from gvnfm.vnfm.settings import VnfmSettings, load_settings

log = logging.getLogger("gvnfm.vnfm")


async def run_vnfm(settings: VnfmSettings, stop: asyncio.Event | None = None) -> None:
    from gvnfm.store.sql import open_store
    from gvnfm.transport import Transport, open_transport, url_with_credentials
    from gvnfm.vnfm.service import VnfmService

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db, settings.state_dir)
    transport = open_transport(settings.broker, exchange=settings.exchange)
    ems_transport = (open_transport(settings.ems_broker, exchange=settings.exchange)
                     if settings.ems_broker and settings.ems_broker != settings.broker else None)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await transport.connect()
        if ems_transport is not None:
            await ems_transport.connect()
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
