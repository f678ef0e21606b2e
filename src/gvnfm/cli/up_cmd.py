"""``gvnfm up PATH``: deploy a network service on this machine, show it live, tear it down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from gvnfm.cli.day2_cmd import Output
from gvnfm.logs import setup_logging
from gvnfm.ops.signals import until_stopped
from gvnfm.private import open_private_append, write_private

log = logging.getLogger("gvnfm.up")

#: seconds the teardown waits for the VNFMs' RELEASE_RESOURCES answers before removing the hosts anyway
TEARDOWN_TIMEOUT = 300.0
#: at most this long on a deployment interrupted before it was ACTIVE (hosts may have no EMS to run TERMINATE)
INTERRUPTED_TEARDOWN_TIMEOUT = 1.0
#: seconds the in-process VNFM's operations in flight get to end when `up` closes: after a signal, and else
CLOSE_GRACE = 5.0
STOP_GRACE = 0.5
#: seconds after a second signal before `up` exits without finishing the teardown (the watchdog then kills
#: the hosts' processes; the next `gvnfm up` on the state dir removes their folders)
HARD_EXIT = 3.0


def _exit_now() -> None:
    log.warning("event=exit_now reason=teardown_still_running_after_second_signal")
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(130)


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


def keep_hint(nsr: object, state_dir: Path) -> str:
    """How to go on with a failed deployment that ``gvnfm up`` keeps (no I/O)."""
    opt = "" if state_dir == Path(".gvnfm") else f" --state-dir {state_dir}"
    errors = getattr(nsr, "errors", [])
    first = errors[0] if errors else None
    vnf = (first.vnfr if first is not None and first.vnfr else "VNF")
    host = (first.hostname if first is not None and first.hostname else "HOST")
    script = (first.script if first is not None and first.script else "SCRIPT")
    lines = [(f"gvnfm logs {vnf} {host} --runs{opt}", "every run of its scripts, with output"),
             (f"gvnfm update-script {vnf} {script} FIXED_FILE{opt}", "replace the script on every VNFC"),
             (f"gvnfm resume {vnf}{opt}", "run again from the failed script")]
    width = max(len(c) for c, _ in lines)
    return ("the network service is kept in ERROR with its hosts; to go on:\n"
            + "".join(f"  {c.ljust(width)}   # {why}\n" for c, why in lines) + "Ctrl-C tears it down")


def _error(console: Console, text: str, suffix: str = "") -> None:
    """One red line on stderr (not wrapped at the terminal's width, markup in ``text`` printed as is);
    ``console`` is the progress console on stdout, whose colour choice it follows."""
    err = Console(stderr=True, no_color=console.no_color, force_terminal=console.is_terminal or None)
    err.print(f"[red]{escape(text)}[/]{suffix}", highlight=False, soft_wrap=True)


def _refusal_report(path: Path, message: str) -> dict[str, object]:
    """The report of a service refused before an NSR exists (it could not be loaded or validated)."""
    from gvnfm.orchestrator.records import ErrorInfo, now

    at = now()
    return {"nsr": {"id": None, "name": None, "vendor": None, "version": None, "status": "ERROR",
                    "created_at": at, "updated_at": at, "source": str(path)},
            "vnfrs": [], "dependencies": [], "cyclic": [],
            "errors": [ErrorInfo(vnfr="", action="ONBOARD", message=message).model_dump()]}


async def _teardown(runtime: object, nsr: object, stop: asyncio.Event, console: Console, timeout: float) -> None:
    """Tear down, bounded: RELEASE_RESOURCES answers are awaited at most ``timeout`` s. A signal during the
    teardown (a second Ctrl-C, SIGTERM) stops the waiting at once; the hosts are removed either way."""
    from gvnfm.local.runtime import LocalRuntime

    assert isinstance(runtime, LocalRuntime) and runtime.nfvo is not None
    stop.clear()
    task = asyncio.create_task(runtime.teardown(nsr, timeout=timeout))  # type: ignore[arg-type]
    signalled = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
    if task not in done:
        console.print("[yellow]interrupted again: removing the hosts without waiting for the VNFM[/]")
        log.warning("event=teardown_interrupted (no more VNFM answers awaited)")
        runtime.nfvo.stop_waiting()
    signalled.cancel()
    await task


async def run_up(path: Path, *, options: object, once: bool, report: Path | None, live: bool,
                 api_port: int | None, console: Console, json_lines: bool = False,
                 teardown_timeout: float = TEARDOWN_TIMEOUT) -> int:
    """``json_lines``: progress as one JSON object per line on stdout (``console`` then writes to stderr)."""
    from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
    from gvnfm.local.statedir import StateDirBusy
    from gvnfm.local.view import render
    from gvnfm.orchestrator.checks import Finding, check_service
    from gvnfm.orchestrator.errors import DeployFailed, DescriptorError, NotEnoughResources
    from gvnfm.orchestrator.registry import NoVnfm
    from gvnfm.transport import TransportError
    from gvnfm.vim.base import VimError

    assert isinstance(options, RuntimeOptions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig.name)
        log.info("event=up_signal signal=%s count=%d", sig.name, len(signals))
        stop.set()
        if len(signals) == 2:       # the teardown stops waiting for the VNFM; should anything still hang:
            loop.call_later(HARD_EXIT, _exit_now)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    runtime = LocalRuntime(options)
    nsr = None
    code = 0
    kept = False        # a failed deployment kept in ERROR for fixing (without --once)
    view: Live | None = None
    api = None
    try:
        try:
            started, _ = await until_stopped(stop, runtime.start())
            if not started:     # connecting to the broker, opening the store...: nothing deployed yet
                console.print("[yellow]interrupted while starting: nothing was deployed[/]")
                log.info("event=up_interrupted phase=starting")
                return 130
        except StateDirBusy as exc:      # another live `gvnfm up` owns the folder: nothing was touched
            _error(console, str(exc))
            return 2
        except (ValueError, TransportError, VimError) as exc:    # a wrong option, broker or VIM: no traceback
            _error(console, f"cannot start: {exc}")
            return 2
        # the same checks as `gvnfm validate`, all problems at once; the API only for an accepted service
        try:
            bundle = await runtime.load(path)
            assert runtime.deployment is not None
            found = check_service(bundle, image_exists=runtime.deployment.image_exists, vim=options.vim)
        except DescriptorError as exc:
            found = [Finding("error", p) for p in exc.problems]
        for finding in found:
            if finding.level == "warning":
                console.print(f"[yellow]warning:[/] {escape(finding.message)}", highlight=False, soft_wrap=True)
        errors = [f.message for f in found if f.level == "error"]
        if errors:
            text = str(DescriptorError(errors))
            _error(console, text)
            if report is not None:
                await _report(report, _refusal_report(path, text), console)
            return 2
        if api_port is not None and api_port >= 0:
            from gvnfm.api.server import ApiServer

            api = ApiServer(runtime, port=api_port)
            await api.start()
            console.print(f"[dim]control API on {api.url} (OpenAPI at {api.url}/docs)[/]")
            console.print(f"web page: {api.page_url}", highlight=False, markup=False, soft_wrap=True)
        assert runtime.nfvo is not None
        nfvo = runtime.nfvo
        if live:
            view = Live(render(None, f"gvnfm up {path}"), console=console, refresh_per_second=8, transient=False)
            view.start()
            nfvo.events.add(lambda _e: view.update(render(nfvo.nsrs.get(_e.nsr_id), f"gvnfm up {path}"))
                            if view is not None else None)
        elif json_lines:
            runtime.nfvo.events.add(lambda e: print(json.dumps(e.as_dict()), flush=True))
        else:
            runtime.nfvo.events.add(lambda e: console.print(
                f"{e.vnfr or '-'} {e.hostname or ''} {e.action or ''} {e.event or ''} {e.script or ''} "
                f"{e.state or ''} {e.message or ''}".replace("  ", " ").strip(), highlight=False, markup=False,
                soft_wrap=True))
        deploy_task = asyncio.create_task(runtime.deploy(bundle))
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({deploy_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if deploy_task not in done:
            deploy_task.cancel()
            console.print("[yellow]interrupted during deployment: tearing down (Ctrl-C again: without waiting "
                          "for the VNFM)[/]")
            await asyncio.wait({deploy_task})      # its requests cancelled, nothing left half-sent
            code = 130
            # a host whose EMS never registered cannot run TERMINATE: the VNFM's answer is not awaited long
            teardown_timeout = min(teardown_timeout, INTERRUPTED_TEARDOWN_TIMEOUT)
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
                return 1        # the operation failed (GRANT refused): exit codes are 0, 1, 2
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
            elif code == 1 and not once and nsr is not None:
                # kept for fixing: state ERROR, hosts kept; logs / update-script / resume work on it
                if view is not None:
                    view.update(render(nsr, f"gvnfm up {path}"))
                _error(console, f"deployment failed: {_failure_text(nsr)}")
                console.print(keep_hint(nsr, options.state_dir), highlight=False, markup=False, soft_wrap=True)
                await stop_task
                kept = True
                code = 0 if nsr.status == "ACTIVE" else 1     # resumed to ACTIVE meanwhile: a success
        stop_task.cancel()
        if view is not None and nsr is not None:
            view.update(render(nsr, f"gvnfm up {path}"))
        if code == 1 and nsr is not None and not kept:
            _error(console, f"deployment failed: {_failure_text(nsr)}")
        if nsr is not None:
            await _teardown(runtime, nsr, stop, console, teardown_timeout)
            if view is not None:
                view.update(render(nsr, f"gvnfm up {path}"))
            if report is not None:
                await _report(report, await runtime.report(nsr), console)
        if code == 0 or kept:
            console.print("[green]deployed, ACTIVE, torn down[/]" if once else "torn down")
        return code
    finally:
        if view is not None:
            view.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if api is not None:
            await api.stop()
        # after a signal, VNFM operations still in flight (their hosts are gone) are cancelled unanswered
        await runtime.close(grace=STOP_GRACE if signals else CLOSE_GRACE)


async def _report(path: Path, data: dict[str, object], console: Console) -> None:
    await asyncio.to_thread(_write, path, json.dumps(data, indent=2))
    console.print(f"report written to {path}", highlight=False, markup=False, soft_wrap=True)


def _write(path: Path, text: str) -> None:
    write_private(path, text)


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        path: Path = typer.Argument(..., help="NSD JSON, VNF package (.tar or folder), or a folder of them"),
        once: bool = typer.Option(False, "--once",
                                  help="tear down as soon as ACTIVE; exit 0, or non-zero naming the failure"),
        report: Path | None = typer.Option(None, "--report", help="write a JSON report of the run"),
        vim: str = typer.Option("process", "--vim", help="process (default, unprivileged) or netns (root)"),
        broker: str | None = typer.Option(None, "--broker", help="amqp://... or stomp://... (default: in-process)"),
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
        teardown_timeout: float = typer.Option(
            TEARDOWN_TIMEOUT, "--teardown-timeout", help="seconds the teardown waits for the VNFMs' RELEASE_RESOURCES "
                                                         "answers before removing the hosts anyway (Ctrl-C during the "
                                                         "teardown: at once)"),
        api_port: int = typer.Option(0, "--api-port", help="control API port (0 = any free port, -1 = none)"),
        log_level: str = typer.Option("INFO", "--log-level"),
        plain: bool = typer.Option(False, "--plain", help="progress as lines instead of a live table"),
        output: Output = typer.Option(Output.text, "--output", "-o",
                                      help="json: progress as JSON lines on stdout, messages on stderr"),
    ) -> None:
        """Deploy a network service locally and keep it running until interrupted.

        The in-process VNFM reads GVNFM_* environment variables as `gvnfm vnfm` does (an option given
        here wins); broker, state dir and endpoint are set by the options above only."""
        from gvnfm.local.runtime import RuntimeOptions
        from gvnfm.private import private_dir

        private_dir(state_dir)
        log_file = open_private_append(state_dir / "up.log")
        setup_logging(log_level, stream=log_file)
        as_json = output == "json"
        console = Console(stderr=as_json)
        options = RuntimeOptions(state_dir=state_dir, broker=broker, vim=vim, capacity=capacity, endpoint=endpoint,
                                 db=db, ems_username=ems_user, ems_password=ems_password, concurrency=concurrency,
                                 ems_start_timeout=ems_start_timeout, operation_timeout=operation_timeout,
                                 script_timeout=script_timeout, script_log_minutes=script_log_minutes)
        live = not plain and not as_json and sys.stdout.isatty()
        code = asyncio.run(run_up(path, options=options, once=once, report=report, live=live,
                                  api_port=None if api_port < 0 else api_port, console=console,
                                  json_lines=as_json, teardown_timeout=teardown_timeout))
        raise typer.Exit(code)
