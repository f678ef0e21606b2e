"""Runs the selected cases in order and collects the report (the library entry point; the command
line and the smoke test both call ``run_bench``)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import traceback
from pathlib import Path

from bench import cases, machine
from bench.config import BenchConfig
from bench.footprint import ems_footprint
from bench.many import many_ns
from bench.profiling import profile_fanout
from bench.report import Report

log = logging.getLogger("bench")


async def run_bench(cfg: BenchConfig) -> Report:
    """Measure every selected case; a case that fails is reported in ``Report.errors`` and the
    others still run."""
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="gvnfm-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = Report(machine=await machine.describe(cfg.broker), settings=cfg.as_dict())
    report.settings["workdir"] = str(workdir)
    sizes = sorted(set(cfg.sizes))
    try:
        if "ems-footprint" in cfg.cases:
            await _guard(report, "ems-footprint", ems_footprint(cfg, workdir, report))
        if "per-script" in cfg.cases:
            await _guard(report, "per-script", cases.per_script(cfg, workdir, report))
        if any(c in cfg.cases for c in ("fan-out", "storm", "memory", "latency")):
            for n in sizes:
                memory = "memory" in cfg.cases and (n == sizes[-1] or n >= 1000)
                await _guard(report, f"N={n}", cases.at_size(cfg, n, workdir, report, memory=memory))
        if "many-ns" in cfg.cases:
            await _guard(report, "many-ns", many_ns(cfg, workdir, report))
        if cfg.stomp_broker:
            await _guard(report, "per-script STOMP", cases.per_script(cfg, workdir, report, stomp=True))
            await _guard(report, f"fan-out STOMP N={cfg.stomp_size}",
                         cases.fanout_stomp(cfg, cfg.stomp_size, workdir, report))
        if cfg.profile is not None:
            await _guard(report, "profile", profile_fanout(cfg, sizes[-1], workdir, cfg.profile, report))
    finally:
        report.machine["loadavg_at_end"] = list(os.getloadavg())
        if cfg.workdir is None and not report.errors:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


async def _guard(report: Report, what: str, coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except Exception as exc:
        log.error("bench case %s failed: %s", what, exc)
        log.debug("%s", traceback.format_exc())
        report.errors.append(f"{what}: {exc.__class__.__name__}: {exc}")
