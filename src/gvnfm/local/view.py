"""The live view of ``gvnfm up``: per VNF its state and current NFVO action, per VNFC its state and
the event and script running now."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from gvnfm.orchestrator.records import NetworkServiceRecord

_STYLE = {"ACTIVE": "green", "ERROR": "bold red", "INITIALIZED": "cyan", "INACTIVE": "yellow",
          "TERMINATED": "dim", "running": "yellow", "done": "green", "failed": "bold red"}


def _styled(value: str | None) -> str:
    if not value:
        return ""
    style = _STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def render(nsr: NetworkServiceRecord | None, title: str) -> Table:
    table = Table(title=title, expand=False, show_lines=False)
    for col in ("VNF / VNFC", "state", "action / event", "script", "step"):
        table.add_column(col)
    if nsr is None:
        table.add_row("loading…", "", "", "", "")
        return table
    table.caption = f"network service {nsr.name} — {_styled(nsr.status)}"
    for state in nsr.vnfrs.values():
        table.add_row(f"[bold]{state.name}[/] ({state.type})", _styled(state.status), state.action or "", "", "")
        record = state.vnfr or {}
        instances = {i.get("hostname"): i for vdu in record.get("vdu") or [] for i in vdu.get("vnfc_instance") or []}
        for host in state.hosts or list(instances):
            inst = instances.get(host, {})
            progress = state.progress.get(host)
            ips = ", ".join(f"{ip.get('netName')}={ip.get('ip')}" for ip in inst.get("ips") or [])
            table.add_row(f"  {host} [dim]{ips}[/]", _styled(inst.get("state")),
                          progress.event if progress else "", progress.script if progress else "",
                          _styled(progress.status) if progress else "")
        if state.error is not None:
            # stripped: a final newline of stderr would add a blank line to the row
            text = ((state.error.stderr or "").strip() or state.error.message.strip())[:80]
            table.add_row(f"  [red]error[/] {state.error.hostname or ''}", "", state.error.event or state.error.action,
                          state.error.script or "", f"[red]{escape(text)}[/]")
    return table
