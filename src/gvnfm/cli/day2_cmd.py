"""Day-2 commands against a running ``gvnfm up`` (through its control API)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

console = Console()

_STATE = typer.Option(Path(".gvnfm"), "--state-dir", help="the state dir of the running `gvnfm up`")
_NSR = typer.Option("current", "--nsr", help="network service id or name (default: the only one)")


def _api(state_dir: Path) -> str:
    info = state_dir / "api.json"
    if not info.exists():
        console.print(f"[red]no running `gvnfm up` found ({info} missing)[/]")
        raise typer.Exit(2)
    return str(json.loads(info.read_text())["url"])


def _call(state_dir: Path, method: str, path: str, body: dict[str, Any] | None = None,
          timeout: float = 1800.0) -> Any:
    url = _api(state_dir) + path
    try:
        response = httpx.request(method, url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach gvnfm up at {url}: {exc}[/]")
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        console.print(f"[red]{response.status_code}: {detail}[/]", highlight=False)
        raise typer.Exit(1)
    return response.json()


def _vnfr_path(nsr: str, vnfr: str) -> str:
    return f"/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(state_dir: Path = _STATE, nsr: str = _NSR, as_json: bool = typer.Option(False, "--json")) -> None:
        """Records of the running network service: VNFRs, VNFCs, states."""
        data = _call(state_dir, "GET", f"/api/v1/ns-records/{nsr}")
        if as_json:
            console.print_json(json.dumps(data))
            return
        console.print(f"[bold]{data['nsr']['name']}[/] {data['nsr']['status']}")
        for v in data["vnfrs"]:
            console.print(f"  {v['name']} ({v['type']}) {v['status']}")
            for c in v["vnfc"]:
                ips = " ".join(f"{k}={ip}" for k, ip in c["ips"].items())
                console.print(f"    {c['hostname']} {c['state']} {ips}", highlight=False)

    @app.command("scale-out")
    def scale_out(vnfr: str, component: str | None = typer.Option(None, "--component"),
                  standby: bool = typer.Option(False, "--standby"), state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Add a VNFC instance to a VNF."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/scale-out",
                    {"component_id": component, "standby": standby})
        console.print(f"added {out['vnfcInstance']['hostname']} ({out['vnfcInstance'].get('state')})")

    @app.command("scale-in")
    def scale_in(vnfr: str, hostname: str, state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Remove a VNFC instance (dependants run their SCALE_IN scripts first)."""
        _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/scale-in", {"hostname": hostname})
        console.print(f"removed {hostname}")

    @app.command("heal")
    def heal(vnfr: str, hostname: str, cause: str = typer.Option(..., "--cause"), state_dir: Path = _STATE,
             nsr: str = _NSR) -> None:
        """Run the HEAL scripts on one VNFC with $cause (``switchToStandby`` activates a standby VNFC)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/heal", {"hostname": hostname, "cause": cause})
        console.print(f"healed {hostname}: state {(out.get('vnfcInstance') or {}).get('state')}")

    @app.command("update-script")
    def update_script(vnfr: str, name: str, file: Path, state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Replace a package script on every VNFC of a VNF (a later `resume` runs the new version)."""
        _call(state_dir, "PUT", _vnfr_path(nsr, vnfr) + f"/scripts/{name}", {"content": file.read_text()})
        console.print(f"updated {name} on {vnfr}")

    @app.command("update")
    def update(vnfr: str, state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Run the UPDATE lifecycle event's scripts on every VNFC of a VNF (to replace a script first,
        use `update-script`)."""
        _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/update")
        console.print(f"{vnfr}: UPDATE scripts executed")

    @app.command("execute")
    def execute(vnfr: str, file: Path, state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Run an ad-hoc script on every VNFC of a VNF; prints each VNFC's result. Exit 1 naming the
        VNFCs where it failed (the VNF keeps its state: an ad-hoc script is no lifecycle event)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/execute", {"script": file.read_text()})
        for r in out.get("results") or []:
            console.print(f"[bold]{r.get('hostname')}[/] status {r.get('status')}")
            if r.get("output"):
                console.print(r["output"].rstrip(), highlight=False, markup=False, soft_wrap=True)
            if r.get("err"):
                console.print(r["err"].rstrip(), style="red", highlight=False, markup=False, soft_wrap=True)
        failed = out.get("failed") or [r.get("hostname") for r in out.get("results") or [] if r.get("status")]
        if failed:
            console.print(f"[red]failed on {len(failed)} VNFC(s): {', '.join(map(str, failed))}[/]", highlight=False)
        elif out.get("error"):
            console.print(f"[red]{out['error']}[/]", highlight=False)
        raise typer.Exit(1 if failed or out.get("error") or out.get("ok") is False else 0)

    @app.command("start")
    def start(vnfr: str, hostname: str | None = typer.Argument(None), state_dir: Path = _STATE,
              nsr: str = _NSR) -> None:
        """START a VNF (its START scripts on every VNFC, or on one)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/start", {"hostname": hostname})
        console.print(f"{vnfr}: {out['status']}")

    @app.command("stop")
    def stop(vnfr: str, hostname: str | None = typer.Argument(None), state_dir: Path = _STATE,
             nsr: str = _NSR) -> None:
        """STOP a VNF (its STOP scripts on every VNFC, or on one)."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/stop", {"hostname": hostname})
        console.print(f"{vnfr}: {out['status']}")

    @app.command("resume")
    def resume(vnfr: str, state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """RESUME a VNF in ERROR from the failed script."""
        out = _call(state_dir, "POST", _vnfr_path(nsr, vnfr) + "/resume")
        console.print(f"{vnfr}: {out['status']}")

    @app.command("logs")
    def logs(vnfr: str, hostname: str,
             follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines (Ctrl-C ends)"),
             interval: float = typer.Option(2.0, "--interval", help="seconds between polls of --follow"),
             timeout: float | None = typer.Option(None, "--timeout", help="stop following after this many seconds"),
             state_dir: Path = _STATE, nsr: str = _NSR) -> None:
        """Script output and error logs of one VNFC (LOG_REQUEST). With --follow, `gvnfm up` asks the
        VNFM again only when the VNFC's log may have changed (a script ran, an operation was answered)."""
        printed = {"outputLog": 0, "errorLog": 0}
        path = _vnfr_path(nsr, vnfr) + f"/logs/{hostname}"
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
