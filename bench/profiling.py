"""The profile of the hottest case: fan-out at the largest N, with the VNFM and the EMS fleet each
under cProfile (a separate run: the profiler's own overhead must not distort the timed figures).
Writes ``vnfm.prof``/``fleet.prof`` and readable summaries ``vnfm-top.txt``/``fleet-top.txt``."""

from __future__ import annotations

import io
import pstats
from pathlib import Path

from bench import messages
from bench.config import BenchConfig
from bench.report import Report
from bench.rig import Rig


def summarise(prof: Path, out: Path, limit: int = 35) -> str:
    """Top functions by own time and by cumulative time, as text."""
    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    buf.write(f"== {prof.name}: by own time (tottime) ==\n")
    stats.sort_stats("tottime").print_stats(limit)
    buf.write(f"\n== {prof.name}: by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(limit)
    text = buf.getvalue()
    out.write_text(text)
    return text


async def profile_fanout(cfg: BenchConfig, n: int, workdir: Path, outdir: Path, report: Report) -> None:
    _mkdir(outdir)
    k = cfg.fanout_scripts
    rig = Rig(cfg.broker, workdir, f"profile-n{n}", log_level=cfg.vnfm_log_level)
    vnfm_prof, fleet_prof = outdir / "vnfm.prof", outdir / "fleet.prof"
    try:
        await rig.start_vnfm(cfg.concurrency, profile=vnfm_prof)
        warm, *hosts = (await rig.start_fleet(n + 1, profile=fleet_prof)).hostnames
        await rig.warm_up(warm)
        result = await rig.instantiate(hosts, messages.script_names(k), timeout=cfg.op_timeout,
                                       expect_steps=2 * k * n)
    finally:
        await rig.close()   # SIGTERM: both exit cleanly and cProfile writes its file
    files = {"n": n, "seconds_under_profiler": result.seconds}
    for prof in (vnfm_prof, fleet_prof):
        if prof.exists():
            summary = prof.with_name(prof.stem + "-top.txt")
            summarise(prof, summary)
            files[prof.stem] = str(prof)
            files[prof.stem + "_summary"] = str(summary)
    report.settings["profile"] = files


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
