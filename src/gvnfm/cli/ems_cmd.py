"""``gvnfm ems``: run the EMS agent (one host, or ``--hosts N`` in one process).

The agent runs on every VM: this module imports only what an idle agent uses (typer without rich,
the agent, its dataclass config). ``--http`` loads the ops server (FastAPI, prometheus_client) and
``--check-config`` the settings renderer, each only when given (docs/performance.md, *A light EMS*).
``gvnfm ems`` reaches this module without building the whole ``gvnfm`` app (:mod:`gvnfm.cli.entry`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from pathlib import Path

import typer

from gvnfm.ems.agent import EmsAgent, EmsFleet
from gvnfm.ems.config import ConfigError, EmsConfig, load_config
from gvnfm.logs import formatter, quote, setup_logging
from gvnfm.ops.health import Health
from gvnfm.ops.signals import run_until_signalled

log = logging.getLogger("gvnfm.ems")
LOG_FILE = "ems-receiver.log"


def add_file_log(log_dir: str, fmt: str = "text") -> Path | None:
    """Also log to ``<log_dir>/ems-receiver.log`` when the folder is writable."""
    path = Path(log_dir) / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        log.warning("event=ems_log_file_unavailable path=%s error=%r", path, str(exc))
        return None
    with contextlib.suppress(OSError):
        os.chmod(path, 0o640)
    handler.setFormatter(formatter(fmt))
    logging.getLogger().addHandler(handler)
    return path


async def run_ems(config: EmsConfig, *, hosts: int = 1, hostname_prefix: str | None = None,
                  stop: asyncio.Event | None = None, http: str | None = None) -> None:
    """Run until ``stop`` is set (also while still connecting); signals are the caller's
    (:func:`gvnfm.ops.signals.run_until_signalled`). ``http``: HOST:PORT of /healthz and /metrics."""
    stop = stop or asyncio.Event()
    target: EmsAgent | EmsFleet
    if hosts > 1 or hostname_prefix:
        target = EmsFleet(config, hosts, hostname_prefix=hostname_prefix)
    else:
        target = EmsAgent(config)
    log.info("event=ems_config %s", " ".join(f"{k}={quote(repr(v))}" for k, v in sorted(config.redacted().items())))
    health = Health()
    server = None
    if http:
        from gvnfm.ops.http import OpsServer  # FastAPI and prometheus_client: only with --http

        server = OpsServer(http, health)
    agents = target.agents if isinstance(target, EmsFleet) else [target]

    def broker() -> str | None:
        down = [a.hostname for a in agents if not getattr(a.transport, "connected", a.transport is not None)]
        return f"not connected to the broker: {', '.join(down[:5])}" if down else None

    health.add("broker", broker)
    if server is not None:
        await server.start()
    starting = asyncio.ensure_future(target.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises a start-up failure
            health.set_ready(True)
            await stop.wait()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
    finally:
        stopping.cancel()
        await target.stop()
        if server is not None:
            await server.stop()


def register(app: typer.Typer) -> None:
    @app.command("ems")
    def ems(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="properties file (default /etc/openbaton/openbaton-ems.properties)"),
        broker_url: str | None = typer.Option(None, "--broker-url", help="amqp://user:pass@host:port/vhost or memory://x"),
        broker_ip: str | None = typer.Option(None, "--broker-ip"),
        broker_port: int | None = typer.Option(None, "--broker-port"),
        username: str | None = typer.Option(None, "--username"),
        password: str | None = typer.Option(None, "--password", help="prefer GVNFM_EMS_PASSWORD (not shown by ps)"),
        hostname: str | None = typer.Option(None, "--hostname"),
        type_: str | None = typer.Option(None, "--type", help="the VNFM endpoint (register queue ems.<type>.register)"),
        exchange: str | None = typer.Option(None, "--exchange"),
        scripts_path: str | None = typer.Option(None, "--scripts-path"),
        log_dir: str | None = typer.Option(None, "--log-dir"),
        state_dir: str | None = typer.Option(None, "--state-dir"),
        root: str | None = typer.Option(None, "--root", help="folder holding scripts/, log/ and state/"),
        script_timeout: float | None = typer.Option(None, "--script-timeout", help="seconds per script"),
        max_output: int | None = typer.Option(None, "--max-output", help="bytes kept of stdout and of stderr"),
        run_as: str | None = typer.Option(None, "--run-as", help="run scripts as this user"),
        prefetch: int | None = typer.Option(None, "--prefetch", help="commands handled at once"),
        result_max_age: float | None = typer.Option(None, "--result-max-age",
                                                    help="seconds a result is answered again for a re-sent "
                                                         "command (default 86400)"),
        hosts: int = typer.Option(1, "--hosts", min=1, help="run N agents <hostname>-1..N in this process"),
        hostname_prefix: str | None = typer.Option(None, "--hostname-prefix",
                                                   help="fleet hostnames <prefix>-1..N (default: the hostname)"),
        log_level: str = typer.Option("INFO", "--log-level"),
        log_format: str = typer.Option("text", "--log-format", help="text (logfmt) or json"),
        http: str | None = typer.Option(None, "--http", help="serve /healthz, /readyz, /metrics on HOST:PORT"),
        check_config: bool = typer.Option(False, "--check-config",
                                          help="print the effective settings (secrets masked) and exit"),
    ) -> None:
        """Run the EMS agent: register with the VNFM and execute its commands (Open Baton compatible)."""
        try:
            setup_logging(log_level, fmt=log_format)
        except ValueError as exc:
            typer.echo(f"gvnfm ems: {exc}", err=True)
            raise typer.Exit(2) from None
        overrides = {"broker_url": broker_url, "broker_ip": broker_ip, "broker_port": broker_port,
                     "username": username, "password": password, "hostname": hostname, "type": type_,
                     "exchange": exchange, "scripts_path": scripts_path, "log_dir": log_dir, "state_dir": state_dir,
                     "root": root, "script_timeout": script_timeout, "max_output_bytes": max_output,
                     "run_as": run_as, "prefetch": prefetch, "result_max_age": result_max_age}
        try:
            cfg = load_config(config, overrides)
        except ConfigError as exc:
            typer.echo(f"gvnfm ems: {exc}", err=True)
            raise typer.Exit(2) from None
        if check_config:
            from gvnfm.configfile import render_settings

            typer.echo(render_settings(cfg.model_dump()))
            raise typer.Exit(0)
        add_file_log(cfg.log_dir, log_format)
        try:
            run_until_signalled(functools.partial(run_ems, cfg, hosts=hosts, hostname_prefix=hostname_prefix,
                                                  http=http))
        except (ConfigError, ValueError) as exc:
            log.error("event=ems_failed error=%r", str(exc))
            typer.echo(f"gvnfm ems: {exc}", err=True)
            raise typer.Exit(1) from None
