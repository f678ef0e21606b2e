"""The profile of the hottest case: fan-out at the largest N, with the VNFM and the EMS fleet each
under cProfile (a separate run: the profiler's own overhead must not distort the timed figures).
Writes ``vnfm.prof``/``fleet.prof``, readable summaries ``vnfm-top.txt``/``fleet-top.txt`` and the
busy time grouped by component ``vnfm-groups.txt``/``fleet-groups.txt`` (docs/performance.md)."""

from __future__ import annotations

import collections
import io
import pstats
import re
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


_GROUPS: tuple[tuple[str, str], ...] = (
    (r"site-packages/(sqlalchemy|aiosqlite|greenlet)/|gvnfm/store/|SimpleQueue|greenlet",
     "store and thread hand-offs (SQLAlchemy, aiosqlite, to_thread)"),
    (r"site-packages/(aio_pika|aiormq|pamqp|yarl)/|gvnfm/transport/|_socket\.socket", "AMQP client"),
    (r"site-packages/pydantic|gvnfm/catalogue/", "pydantic models"),
    (r"gvnfm/", "gvnfm's own code"),
    (r"asyncio/|selectors|contextvars|/queue", "asyncio event loop"),
    (r"logging", "logging"),
    (r"subprocess|fork_exec|waitpid", "process spawn"),
    (r"posixpath|pathlib|genericpath|shutil|lstat|posix\.(stat|mkdir|open)|TextIOWrapper", "file system"),
    (r"json", "json"),
)


def grouped(prof: Path) -> list[tuple[float, float, str]]:
    """Own time outside the epoll wait, by component: [(share, seconds, component)], largest first."""
    totals: collections.Counter[str] = collections.Counter()
    for (file, _line, fn), (_cc, _nc, own, _cum, _callers) in pstats.Stats(str(prof)).stats.items():  # type: ignore[attr-defined]
        where = f"{file}:{fn}"
        if "epoll" in fn:
            continue
        totals[next((name for pattern, name in _GROUPS if re.search(pattern, where)), "other")] += own
    busy = sum(totals.values()) or 1.0
    return [(v / busy, v, k) for k, v in totals.most_common()]


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
    files: dict[str, object] = {"n": n, "seconds_under_profiler": result.seconds}
    for prof in (vnfm_prof, fleet_prof):
        if prof.exists():
            summary = prof.with_name(prof.stem + "-top.txt")
            summarise(prof, summary)
            groups = prof.with_name(prof.stem + "-groups.txt")
            groups.write_text("".join(f"{share * 100:5.1f} %  {sec:7.2f} s  {name}\n"
                                      for share, sec, name in grouped(prof)))
            files[prof.stem] = str(prof)
            files[prof.stem + "_groups"] = str(groups)
            files[prof.stem + "_summary"] = str(summary)
    report.settings["profile"] = files


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
