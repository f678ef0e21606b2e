"""Results: one row per measured figure, printed as a rich table and written as JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    case: str                       # "per-script", "fan-out", "fan-out c=1", "storm", "memory VNFM", ...
    n: int                          # VNFC instances / agents
    gvnfm: float                    # seconds (or KiB for memory rows)
    floor: float | None             # same unit; None when there is no floor (memory)
    unit: str = "s"
    target: float | None = None     # ratio target (or absolute target for memory, in ``unit``)
    detail: dict[str, Any] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)   # gvnfm_i / floor_i of each alternating pair

    @classmethod
    def paired(cls, case: str, n: int, ours: list[float], floor: list[float], **kwargs: Any) -> Row:
        """A figure from alternating measurements (gvnfm, floor, gvnfm, floor, ...): the medians of
        each side, and the ratio of each pair (its median is the row's ratio, min–max its spread)."""
        ratios = [g / f for g, f in zip(ours, floor, strict=True) if f > 0]
        detail = {**kwargs.pop("detail", {}), "gvnfm_runs": ours, "floor_runs": floor}
        return cls(case, n, statistics.median(ours), statistics.median(floor), detail=detail, ratios=ratios, **kwargs)

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor <= 0:
            return None
        if self.ratios:
            return statistics.median(self.ratios)
        return self.gvnfm / self.floor

    @property
    def spread(self) -> str:
        """``min–max`` of the pair ratios and how many pairs ("" for a single measurement)."""
        if len(self.ratios) < 2:
            return ""
        return f"{min(self.ratios):.2f}–{max(self.ratios):.2f} ({len(self.ratios)})"

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.floor is not None else self.gvnfm
        return None if value is None else value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "spread": self.spread, "meets_target": self.meets_target}


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        self.rows.sort(key=_order)
        return row

    def as_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "settings": self.settings, "rows": [r.as_dict() for r in self.rows],
                "errors": self.errors}

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")

    def table(self) -> Table:
        m = self.machine
        table = Table(title=f"gvnfm against the floor — {m.get('nproc')} × {m.get('cpu')}, "
                            f"RabbitMQ {m.get('rabbitmq')}, Python {m.get('python')}", caption=self.load())
        for col, justify in (("case", "left"), ("N", "right"), ("gvnfm", "right"), ("floor", "right"),
                             ("ratio", "right"), ("spread (pairs)", "right"), ("target", "right"),
                             ("notes", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in self.rows:
            ratio = r.ratio
            ok = r.meets_target
            style = "" if ok is None else ("green" if ok else "red")
            target = _target(r)
            table.add_row(r.case, str(r.n), _fmt(r.gvnfm, r.unit), "" if r.floor is None else _fmt(r.floor, r.unit),
                          "" if ratio is None else f"{ratio:.2f}×", r.spread,
                          f"[{style}]{target}[/]" if style else target,
                          r.detail.get("note", ""))
        return table

    def markdown(self) -> str:
        """The table as Markdown (for docs/performance.md)."""
        lines = [self.load(), "", "| case | N | gvnfm | floor | ratio | spread (pairs) | target | notes |",
                 "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            ratio = r.ratio
            target = _target(r)
            mark = {True: " ✓", False: " ✗", None: ""}[r.meets_target]
            lines.append(f"| {r.case} | {r.n} | {_fmt(r.gvnfm, r.unit)} | "
                         f"{'' if r.floor is None else _fmt(r.floor, r.unit)} | "
                         f"{'' if ratio is None else f'{ratio:.2f}×'} | {r.spread} | {target}{mark} | "
                         f"{r.detail.get('note', '')} |")
        return "\n".join(lines) + "\n"

    def load(self) -> str:
        """The load average (1, 5, 15 min) before and after the run: how busy the machine was."""
        def fmt(key: str) -> str:
            values = self.machine.get(key)
            return " / ".join(f"{v:.2f}" for v in values) if values else "?"
        return f"load average (1/5/15 min) before: {fmt('loadavg_at_start')}; after: {fmt('loadavg_at_end')}"

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        console.print(self.table())
        for e in self.errors:
            console.print(f"[red]error:[/] {e}")


#: Order of the rows in the table and the JSON (then by N).
CASE_ORDER = ("ems start", "ems RSS", "per-script", "fan-out", "fan-out c=1", "fan-out sleep", "storm", "many NS",
              "memory VNFM/VNFC", "memory EMS/agent")


def _order(row: Row) -> tuple[int, int]:
    case = row.case.split(" (")[0]
    return (CASE_ORDER.index(case) if case in CASE_ORDER else len(CASE_ORDER), row.n)


def _target(r: Row) -> str:
    if r.target is None:
        return ""
    return f"≤ {r.target:g}×" if r.floor is not None else f"≤ {r.target:g} {r.unit}"


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "KiB":
        return f"{value:,.1f} KiB"
    return f"{value:g} {unit}"
