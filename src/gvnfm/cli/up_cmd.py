"""``gvnfm up PATH``: deploy a network service on this machine, show it live, tear it down."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from gvnfm.logs import setup_logging

log = logging.getLogger("gvnfm.up")


def _failure_text(nsr: object) -> str:
    errors = getattr(nsr, "errors", [])
    if not errors:
        return "the network service did not become ACTIVE"
    e = errors[0]
    parts = [f"VNF {e.vnfr}" if e.vnfr else "", f"VNFC {e.hostname}" if e.hostname else "",
             f"event {e.event}" if e.event else f"during {e.action}", f"script {e.script}" if e.script else ""]
    head = ", ".join(p for p in parts if p)
    stderr = (e.stderr or "").strip()
    return f"{head}: {e.message}" + (f"\nstderr:\n{stderr}" if stderr and stderr not in e.message else "")


def _error(console: Console, text: str, suffix: str = "") -> None:
    """One red line (not wrapped at the terminal's width, markup in ``text`` printed as is)."""
    console.print(f"[red]{escape(text)}[/]{suffix}", highlight=False, soft_wrap=True)


def _refusal_report(path: Path, message: str) -> dict[str, object]:
    """The report of a service refused before an NSR exists (it could not be loaded or validated)."""
    from gvnfm.orchestrator.records import ErrorInfo, now

    at = now()
    return {"nsr": {"id": None, "name": None, "vendor": None, "version": None, "status": "ERROR",
                    "created_at": at, "updated_at": at, "source": str(path)},
            "vnfrs": [], "dependencies": [], "cyclic": [],
            "errors": [ErrorInfo(vnfr="", action="ONBOARD", message=message).model_dump()]}


async def run_up(path: Path, *, options: object, once: bool, report: Path | None, live: bool,
                 api_port: int | None, console: Console) -> int:
    from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
    from gvnfm.local.view import render
    from gvnfm.orchestrator.errors import DeployFailed, DescriptorError, NotEnoughResources
    from gvnfm.orchestrator.registry import NoVnfm
    from gvnfm.transport import TransportError
    from gvnfm.vim.base import VimError

    assert isinstance(options, RuntimeOptions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = LocalRuntime(options)
    nsr = None
    code = 0
    view: Live | None = None
    api = None
    try:
        try:
            await runtime.start()
        except (ValueError, TransportError, VimError) as exc:    # a wrong option, broker or VIM: no traceback
            _error(console, f"cannot start: {exc}")
            return 2
        if api_port is not None and api_port >= 0:
            from gvnfm.api.server import ApiServer

            api = ApiServer(runtime, port=api_port)
            await api.start()
            console.print(f"[dim]control API on {api.url} (OpenAPI at {api.url}/docs)[/]")
        assert runtime.nfvo is not None
        if live:
            view = Live(render(None, f"gvnfm up {path}"), console=console, refresh_per_second=8, transient=False)
            view.start()
            runtime.nfvo.events.add(lambda _e: view.update(render(runtime.nfvo.nsrs.get(_e.nsr_id), f"gvnfm up {path}"))
                                    if view is not None else None)
        else:
            runtime.nfvo.events.add(lambda e: console.print(
                f"{e.vnfr or '-'} {e.hostname or ''} {e.action or ''} {e.event or ''} {e.script or ''} "
                f"{e.state or ''} {e.message or ''}".replace("  ", " ").strip(), highlight=False, markup=False,
                soft_wrap=True))
        deploy_task = asyncio.create_task(runtime.deploy(path))
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({deploy_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if deploy_task not in done:
            deploy_task.cancel()
            console.print("[yellow]interrupted during deployment: tearing down[/]")
            code = 130
            nsr = next(iter(runtime.nfvo.nsrs.values()), None)
        else:
            try:
                nsr = deploy_task.result()
            except (DescriptorError, NoVnfm) as exc:
                stop_task.cancel()
                _error(console, str(exc))
                if report is not None:
                    await _report(report, _refusal_report(path, str(exc)), console)
                return 2
            except NotEnoughResources as exc:
                stop_task.cancel()
                _error(console, str(exc), " (nothing was deployed)")
                refused = next(reversed(runtime.nfvo.nsrs.values()), None)    # recorded in ERROR
                if report is not None and refused is not None:
                    await _report(report, await runtime.report(refused), console)
                return 3
            except DeployFailed as exc:
                nsr = exc.nsr
                code = 1
            if nsr is not None and nsr.status != "ACTIVE" and code == 0:
                code = 1
            if code == 0 and not once:
                if view is not None:
                    view.update(render(nsr, f"gvnfm up {path}"))
                console.print("[green]network service ACTIVE[/] — Ctrl-C tears it down")
                await stop_task
        stop_task.cancel()
        if view is not None and nsr is not None:
            view.update(render(nsr, f"gvnfm up {path}"))
        if code == 1 and nsr is not None:
            console.print(f"[red]deployment failed[/]: {escape(_failure_text(nsr))}", highlight=False, soft_wrap=True)
        if nsr is not None:
            await runtime.teardown(nsr)
            if view is not None:
                view.update(render(nsr, f"gvnfm up {path}"))
            if report is not None:
                await _report(report, await runtime.report(nsr), console)
        if code == 0:
            console.print("[green]deployed, ACTIVE, torn down[/]" if once else "torn down")
        return code
    finally:
        if view is not None:
            view.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if api is not None:
            await api.stop()
        await runtime.close()


async def _report(path: Path, data: dict[str, object], console: Console) -> None:
    await asyncio.to_thread(_write, path, json.dumps(data, indent=2))
    console.print(f"report written to {path}", highlight=False, markup=False, soft_wrap=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        path: Path = typer.Argument(..., help="NSD JSON, VNF package (.tar or folder), or a folder of them"),
        once: bool = typer.Option(False, "--once",
                                  help="tear down as soon as ACTIVE; exit 0, or non-zero naming the failure"),
        report: Path | None = typer.Option(None, "--report", help="write a JSON report of the run"),
        vim: str = typer.Option("process", "--vim", help="process (default, unprivileged) or netns (root)"),
        broker: str | None = typer.Option(None, "--broker", help="amqp://user:pass@host:5672/ (default: in-process)"),
        capacity: int = typer.Option(64, "--capacity", help="hosts the local VIM can create"),
        state_dir: Path = typer.Option(Path(".gvnfm"), "--state-dir"),
        db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL of the VNFM store "
                                                         "(default: GVNFM_DB, else SQLite in the state dir)"),
        endpoint: str = typer.Option("generic", "--endpoint"),
        ems_user: str | None = typer.Option(
            None, "--ems-user", help="broker user for the hosts' EMS (netns) (default: GVNFM_EMS_USERNAME, else the "
                                     "broker's)"),
        ems_password: str | None = typer.Option(None, "--ems-password",
                                                help="(default: GVNFM_EMS_PASSWORD, else the broker's)"),
        concurrency: int | None = typer.Option(None, "--concurrency", help="VNFCs of one step in parallel "
                                                                           "(default: GVNFM_CONCURRENCY, else 32)"),
        ems_start_timeout: float | None = typer.Option(
            None, "--ems-start-timeout", help="seconds a new host's EMS has to register "
                                              "(default: GVNFM_EMS_START_TIMEOUT, else 120)"),
        operation_timeout: float | None = typer.Option(
            None, "--operation-timeout", help="seconds one VNFM operation (a whole INSTANTIATE, HEAL, ...) may take "
                                              "(default: GVNFM_OPERATION_TIMEOUT, else 7200)"),
        script_timeout: float | None = typer.Option(
            None, "--script-timeout", help="seconds one script may run (default: GVNFM_SCRIPT_TIMEOUT, else 1800)"),
        script_log_minutes: float | None = typer.Option(
            None, "--script-log-minutes", help="keep script logs this many minutes, 0 = forever "
                                               "(default: GVNFM_SCRIPT_LOG_MINUTES, else 180)"),
        api_port: int = typer.Option(0, "--api-port", help="control API port (0 = any free port, -1 = none)"),
        log_level: str = typer.Option("INFO", "--log-level"),
        plain: bool = typer.Option(False, "--plain", help="progress as lines instead of a live table"),
    ) -> None:
        """Deploy a network service locally and keep it running until interrupted.

        The in-process VNFM reads GVNFM_* environment variables as `gvnfm vnfm` does (an option given
        here wins); broker, state dir and endpoint are set by the options above only."""
        from gvnfm.local.runtime import RuntimeOptions

        state_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(state_dir / "up.log", "a")
        setup_logging(log_level, stream=log_file)
        console = Console(stderr=False)
        options = RuntimeOptions(state_dir=state_dir, broker=broker, vim=vim, capacity=capacity, endpoint=endpoint,
                                 db=db, ems_username=ems_user, ems_password=ems_password, concurrency=concurrency,
                                 ems_start_timeout=ems_start_timeout, operation_timeout=operation_timeout,
                                 script_timeout=script_timeout, script_log_minutes=script_log_minutes)
        live = not plain and sys.stdout.isatty()
        code = asyncio.run(run_up(path, options=options, once=once, report=report, live=live,
                                  api_port=None if api_port < 0 else api_port, console=console))
        raise typer.Exit(code)
