"""Day-2 commands against a running ``gvnfm up`` (through its control API)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

#: exit codes of every gvnfm command (README "Exit codes")
OK, FAILED, USAGE = 0, 1, 2

_STATE = typer.Option(Path(".gvnfm"), "--state-dir", help="the state dir of the running `gvnfm up`")
_NSR = typer.Option("current", "--nsr", help="network service id or name (default: the only one)")


class Output(StrEnum):
    text = "text"
    json = "json"


_OUTPUT = typer.Option(Output.text, "--output", "-o", help="text, or json for tools")
_FILE = typer.Argument(..., exists=True, dir_okay=False, readable=True, resolve_path=True)


def fail(text: str, code: int) -> NoReturn:
    """One plain line on stderr (not wrapped, no markup), then exit ``code``."""
    err_console.print(f"error: {text}", style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def exit_code_of(status: int) -> int:
    """An API answer's exit code: an unknown NSR/VNF/VNFC (404), a malformed request (422) or a
    refused token (401) is a usage/environment error (2); a request refused in the current state
    (400, 409) or a failed operation (502), 1."""
    return USAGE if status in (401, 404, 422) else FAILED


def _api(state_dir: Path) -> tuple[str, str]:
    """(url, token) of the running `gvnfm up`, from its api.json."""
    info = state_dir / "api.json"
    try:
        data = json.loads(info.read_text())
    except FileNotFoundError:
        fail(f"no running `gvnfm up` in {state_dir} (no {info.name}); start one, or pass --state-dir", USAGE)
    except PermissionError:
        fail(f"cannot read {info}: only the user who runs that `gvnfm up` can use it", USAGE)
    except ValueError:
        fail(f"{info} is not the api.json of a running `gvnfm up`", USAGE)
    return str(data["url"]), str(data.get("token") or "")


def _call(state_dir: Path, method: str, path: str, body: dict[str, Any] | None = None,
          timeout: float = 1800.0) -> Any:
    base, token = _api(state_dir)
    try:
        response = httpx.request(method, base + path, json=body, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        fail(f"cannot reach gvnfm up at {base}: {exc}", USAGE)
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        fail(detail if isinstance(detail, str) else json.dumps(detail), exit_code_of(response.status_code))
    return response.json()


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _print_runs(runs: list[dict[str, Any]], output: Output) -> None:
    if output == "json":
        return _json(runs)
    for r in runs:
        state = "ok" if r["exit_status"] == 0 else f"exit {r['exit_status']}"
        console.print(f"--- {r['started_at']} {r['event']} {r['script']}: {state} ({r['duration']:.2f} s)",
                      style="bold" if r["exit_status"] == 0 else "bold red", highlight=False, markup=False,
                      soft_wrap=True)
        for key in ("stdout", "stderr"):
            if (r.get(key) or "").strip():
                console.print(r[key].rstrip(), style="red" if key == "stderr" else None, highlight=False,
                              markup=False, soft_wrap=True)
    return None


def _vnfr_path(nsr: str, vnfr: str) -> str:
    return f"/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT,
               as_json: bool = typer.Option(False, "--json", help="same as -o json")) -> None:
        """Records of the running network service: VNFRs, VNFCs, states."""
        data = _call(state_dir, "GET", f"/api/v1/ns-records/{nsr}")
        if as_json or output == "json":
            _json(data)
            return
        console.print(f"[bold]{data['nsr']['name']}[/] {data['nsr']['status']}")
        for v in data["vnfrs"]:
            console.print(f"  {v['name']} ({v['type']}) {v['status']}")
            for c in v["vnfc"]:
                ips = " ".join(f"{k}={ip}" for k, ip in c["ips"].items())
                console.print(f"    {c['hostname']} {c['state']} {ips}", highlight=False)

    @app.command("ops")
    def ops(vnfr: str | None = typer.Argument(None, help="only this VNF's operations"), state_dir: Path = _STATE,
            nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Lifecycle operations of the network service, oldest first: id, action, VNF, state, start, end, error."""
        query = f"?nsr={nsr}" + (f"&vnfr={vnfr}" if vnfr else "")
        data = _call(state_dir, "GET", f"/api/v1/operations{query}")
        if output == "json":
            _json(data)
            return
        for op in data:
            end = op.get("ended_at") or "-"
            err = f"  {op['error']}" if op.get("error") else ""
            console.print(f"{op['id'][:8]}  {op['action']:<17} {op['vnfr'] or '-':<12} {op['state']:<9} "
                          f"{op['started_at']}  {end}{err}", highlight=False, markup=False, soft_wrap=True)

    @app.command("scale-out")
    def scale_out(vnfr: str, component: str | None = typer.Option(None, "--component"),
                  standby: bool = typer.Option(False, "--standby"), state_dir: Path = _STATE, nsr: str = _NSR,
                  output: Output = _OUTPUT) -> None:
        """Add a VNFC instance to a VNF."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/scale-out",
                    {"component_id": component, "standby": standby})
        if output == "json":
            return _json(out)
        console.print(f"added {out['vnfcInstance']['hostname']} ({out['vnfcInstance'].get('state')})")

    @app.command("scale-in")
    def scale_in(vnfr: str, hostname: str, state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Remove a VNFC instance (dependants run their SCALE_IN scripts first)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/scale-in", {"hostname": hostname})
        if output == "json":
            return _json(out)
        console.print(f"removed {hostname}")

    @app.command("heal")
    def heal(vnfr: str, hostname: str, cause: str = typer.Option(..., "--cause"), state_dir: Path = _STATE,
             nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Run the HEAL scripts on one VNFC with $cause (``switchToStandby`` activates a standby VNFC)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/heal", {"hostname": hostname, "cause": cause})
        if output == "json":
            return _json(out)
        console.print(f"healed {hostname}: state {(out.get('vnfcInstance') or {}).get('state')}"
                      + ("" if out.get("scripts", True) else " (the VNF has no HEAL scripts: none ran)"))

    @app.command("update-script")
    def update_script(vnfr: str, name: str, file: Path = _FILE, state_dir: Path = _STATE, nsr: str = _NSR,
                      output: Output = _OUTPUT) -> None:
        """Replace a package script on every VNFC of a VNF (a later `resume` runs the new version)."""
        out = _call(state_dir, "PUT", _vnfr_path(nsr, vnfr) + f"/scripts/{name}", {"content": file.read_text()})
        if output == "json":
            return _json(out)
        console.print(f"updated {name} on {vnfr}")

    @app.command("update")
    def update(vnfr: str, state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Run the UPDATE lifecycle event's scripts on every VNFC of a VNF (to replace a script first,
        use `update-script`)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/update")
        if output == "json":
            return _json(out)
        console.print(f"{vnfr}: UPDATE scripts executed" if out.get("scripts", True)
                      else f"{vnfr}: updated (the VNF has no UPDATE scripts: none ran)")

    @app.command("execute")
    def execute(vnfr: str, file: Path = _FILE, state_dir: Path = _STATE, nsr: str = _NSR,
                output: Output = _OUTPUT) -> None:
        """Run an ad-hoc script on every VNFC of a VNF (with the variables lifecycle scripts get); prints
        each VNFC's result. Exit 1 naming the VNFCs where it failed (the VNF keeps its state: an ad-hoc
        script is no lifecycle event)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/execute", {"script": file.read_text()})
        failed = out.get("failed") or [r.get("hostname") for r in out.get("results") or [] if r.get("status")]
        code = FAILED if failed or out.get("error") or out.get("ok") is False else OK
        if output == "json":
            _json(out)
            raise typer.Exit(code)
        for r in out.get("results") or []:
            console.print(f"[bold]{r.get('hostname')}[/] status {r.get('status')}")
            if r.get("output"):
                console.print(r["output"].rstrip(), highlight=False, markup=False, soft_wrap=True)
            if r.get("err"):
                err_console.print(r["err"].rstrip(), style="red", highlight=False, markup=False, soft_wrap=True)
        if failed:
            fail(f"failed on {len(failed)} VNFC(s): {', '.join(map(str, failed))}", FAILED)
        elif out.get("error"):
            fail(str(out["error"]), FAILED)
        raise typer.Exit(code)

    @app.command("start")
    def start(vnfr: str, hostname: str | None = typer.Argument(None), state_dir: Path = _STATE,
              nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """START a VNF (its START scripts on every VNFC, or on one)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/start", {"hostname": hostname})
        if output == "json":
            return _json(out)
        console.print(f"{vnfr}: {out['status']}")

    @app.command("stop")
    def stop(vnfr: str, hostname: str | None = typer.Argument(None), state_dir: Path = _STATE,
             nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """STOP a VNF (its STOP scripts on every VNFC, or on one)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/stop", {"hostname": hostname})
        if output == "json":
            return _json(out)
        console.print(f"{vnfr}: {out['status']}")

    @app.command("restart")
    def restart(vnfr: str, image: str | None = typer.Option(None, "--image", help="rebuild from this image"),
                state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Rebuild a VNF's hosts (same names and addresses) and INSTANTIATE it again with its record, as the
        NFVO's restart does (no new hosts); then MODIFY and START follow."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/restart", {"image": image})
        if output == "json":
            return _json(out)
        console.print(f"{vnfr}: {out['status']} ({', '.join(out['hosts'])} rebuilt)")

    @app.command("resume")
    def resume(vnfr: str, state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """RESUME a VNF in ERROR from the failed script (then the deployment goes on: MODIFY, START)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/resume")
        if output == "json":
            return _json(out)
        console.print(f"{vnfr}: {out['status']}")

    @app.command("logs")
    def logs(vnfr: str, hostname: str,
             follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines (Ctrl-C ends)"),
             interval: float = typer.Option(2.0, "--interval", help="seconds between polls of --follow"),
             timeout: float | None = typer.Option(None, "--timeout", help="stop following after this many seconds"),
             runs: bool = typer.Option(False, "--runs", help="every script run with its time, exit status, "
                                                             "duration and output (failed runs too)"),
             state_dir: Path = _STATE, nsr: str = _NSR, output: Output = _OUTPUT) -> None:
        """Script output and error logs of one VNFC (LOG_REQUEST). With --follow, `gvnfm up` asks the
        VNFM again only when the VNFC's log may have changed (a script ran, an operation was answered).
        `-o json` prints the answer once (`outputLog`, `errorLog` as lists of lines)."""
        if runs:
            return _print_runs(_call(state_dir, "GET", _vnfr_path(nsr, vnfr) + f"/runs/{hostname}"), output)
        printed = {"outputLog": 0, "errorLog": 0}
        path = _vnfr_path(nsr, vnfr) + f"/logs/{hostname}"
        if output == "json":
            return _json(_call(state_dir, "GET", path))
        end = time.monotonic() + timeout if timeout is not None else None
        version = None
        try:
            while True:
                out = _call(state_dir, "GET", path + (f"?since={version}" if version is not None else ""))
                version = out.get("version")
                for key, style in (("outputLog", None), ("errorLog", "red")):
                    lines = out.get(key) or []
                    for line in lines[printed[key]:]:
                        console.print(line, style=style, highlight=False, markup=False, soft_wrap=True)
                    printed[key] = len(lines)
                if not follow or (end is not None and time.monotonic() >= end):
                    return
                time.sleep(interval if end is None else max(0.0, min(interval, end - time.monotonic())))
        except KeyboardInterrupt:
            return
