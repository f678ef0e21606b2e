"""``gvnfm doctor``: one line per check (broker, credentials, permissions, queues, NFVO, EMSs) with its fix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        config: Path | None = typer.Option(None, "--config", "-c", help="the VNFM's properties file"),
        broker: str | None = typer.Option(None, "--broker", help="as for gvnfm vnfm"),
        db: str | None = typer.Option(None, "--db", help="as for gvnfm vnfm"),
        state_dir: Path | None = typer.Option(None, "--state-dir", help="as for gvnfm vnfm"),
        endpoint: str | None = typer.Option(None, "--endpoint", help="as for gvnfm vnfm"),
        advertised: str | None = typer.Option(None, "--advertised",
                                              help="IP[:PORT] of the broker the EMSs are given (the NFVO's "
                                                   "brokerIp; default: from the last INSTANTIATE stored)"),
        hosts_dir: Path | None = typer.Option(None, "--hosts-dir",
                                              help="local VIM hosts folder (<gvnfm up state dir>/vim/hosts): "
                                                   "show a silent host's EMS log"),
    ) -> None:
        """Check what a VNFM needs, from the NFVO to the EMSs; exit 1 when a check fails."""
        from gvnfm.cli.vnfm_cmd import settings_or_exit
        from gvnfm.ops.doctor import Doctor

        settings = settings_or_exit(config, {"broker": broker, "db": db, "state_dir": state_dir,
                                             "endpoint": endpoint})
        if hosts_dir is None and (settings.state_dir / "vim" / "hosts").is_dir():
            hosts_dir = settings.state_dir / "vim" / "hosts"
        verdicts = asyncio.run(Doctor(settings, advertised=advertised, hosts_dir=hosts_dir).run())
        for v in verdicts:
            typer.echo(v.render())
        raise typer.Exit(1 if any(v.status == "FAIL" for v in verdicts) else 0)
