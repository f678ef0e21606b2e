"""``gvnfm ems``: run the EMS agent (one host, or ``--hosts N`` in one process).

The agent runs on every VM: this module imports only what an idle agent uses (argparse,
the agent, its dataclass config). ``--http`` loads the ops server (FastAPI, prometheus_client) and
``--check-config`` the settings renderer, each only when given (docs/performance.md, *A light EMS*).
``gvnfm ems`` reaches this module without building the whole ``gvnfm`` app (:mod:`gvnfm.cli.entry`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gvnfm.ems.agent import EmsAgent, EmsFleet
from gvnfm.ems.config import ConfigError, EmsConfig, load_config
from gvnfm.logs import formatter, quote, setup_logging
from gvnfm.ops.health import Health
from gvnfm.ops.signals import run_until_signalled

if TYPE_CHECKING:
    import typer

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


def parser(prog: str = "gvnfm ems") -> argparse.ArgumentParser:
    """The options of ``gvnfm ems`` (stdlib argparse: typer coerces its options through pydantic, which
    an idle agent would then carry; docs/performance.md, *A light EMS*)."""
    p = argparse.ArgumentParser(prog=prog, description="Run the EMS agent: register with the VNFM and execute its "
                                "commands (Open Baton compatible).")
    p.add_argument("--config", "-c", type=Path,
                   help="properties file (default /etc/openbaton/openbaton-ems.properties)")
    p.add_argument("--broker-url", help="amqp://user:pass@host:port/vhost, stomp://..., stomp+ssl://... or memory://x")
    p.add_argument("--broker-ip")
    p.add_argument("--broker-port", type=int)
    p.add_argument("--username")
    p.add_argument("--password", help="prefer GVNFM_EMS_PASSWORD (not shown by ps)")
    p.add_argument("--hostname")
    p.add_argument("--type", dest="type_", metavar="TYPE",
                   help="the VNFM endpoint (register queue ems.<type>.register)")
    p.add_argument("--exchange")
    p.add_argument("--scripts-path")
    p.add_argument("--log-dir")
    p.add_argument("--state-dir")
    p.add_argument("--root", help="folder holding scripts/, log/ and state/")
    p.add_argument("--script-timeout", type=float, help="seconds per script")
    p.add_argument("--max-output", type=int, help="bytes kept of stdout and of stderr")
    p.add_argument("--run-as", help="run scripts as this user")
    p.add_argument("--prefetch", type=int, help="commands handled at once")
    p.add_argument("--result-max-age", type=float,
                   help="seconds a result is answered again for a re-sent command (default 86400)")
    p.add_argument("--hosts", type=_at_least_one, default=1, help="run N agents <hostname>-1..N in this process")
    p.add_argument("--hostname-prefix", help="fleet hostnames <prefix>-1..N (default: the hostname)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", default="text", help="text (logfmt) or json")
    p.add_argument("--http", help="serve /healthz, /readyz, /metrics on HOST:PORT")
    p.add_argument("--check-config", action="store_true", help="print the effective settings (secrets masked) and exit")
    return p


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def main(argv: list[str] | None = None, prog: str = "gvnfm ems") -> int:
    """``gvnfm ems [options]``; the exit code: 0 stopped cleanly, 1 failed, 2 usage or configuration."""
    try:
        args = parser(prog).parse_args(argv)
    except SystemExit as exc:   # --help (0) or a usage error (2, argparse printed it)
        return int(exc.code or 0)
    try:
        setup_logging(args.log_level, fmt=args.log_format)
    except ValueError as exc:
        print(f"gvnfm ems: {exc}", file=sys.stderr)
        return 2
    overrides = {"broker_url": args.broker_url, "broker_ip": args.broker_ip, "broker_port": args.broker_port,
                 "username": args.username, "password": args.password, "hostname": args.hostname,
                 "type": args.type_, "exchange": args.exchange, "scripts_path": args.scripts_path,
                 "log_dir": args.log_dir, "state_dir": args.state_dir, "root": args.root,
                 "script_timeout": args.script_timeout, "max_output_bytes": args.max_output, "run_as": args.run_as,
                 "prefetch": args.prefetch, "result_max_age": args.result_max_age}
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"gvnfm ems: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        from gvnfm.configfile import render_settings

        print(render_settings(cfg.model_dump()))
        return 0
    assert cfg.log_dir is not None   # (EmsConfig sets every folder)
    add_file_log(cfg.log_dir, args.log_format)
    try:
        run_until_signalled(functools.partial(run_ems, cfg, hosts=args.hosts, hostname_prefix=args.hostname_prefix,
                                              http=args.http))
    except (ConfigError, ValueError) as exc:
        log.error("event=ems_failed error=%r", str(exc))
        print(f"gvnfm ems: {exc}", file=sys.stderr)
        return 1
    return 0


def register(app: typer.Typer) -> None:
    """``ems`` in the ``gvnfm`` app: the arguments go to :func:`main` unparsed (one definition of the
    options; ``gvnfm ems`` as a console script reaches :func:`main` without typer, :mod:`gvnfm.cli.entry`)."""
    import typer

    def ems(ctx: typer.Context) -> None:
        """Run the EMS agent: register with the VNFM and execute its commands (Open Baton compatible).
        `gvnfm ems --help` lists its options."""
        code = main(list(ctx.args))
        if code:
            raise typer.Exit(code)

    ems.__annotations__ = {"ctx": typer.Context, "return": None}   # typer is not a module-level name here
    app.command("ems", add_help_option=False, context_settings={
        "allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})(ems)
