"""Case ``many-ns``: many network services at once. ``--many 100x10``: 100 INSTANTIATEs of 10 VNFCs each
arrive together (an NFVO deploying many NSRs), through one VNFM worker on SQLite and through two
workers on PostgreSQL (same endpoint, same store). Figure: VNFC-scripts per second, against a floor
doing the same round trips (each operation its own stages under its own bound, all at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

from bench import messages
from bench.config import BenchConfig
from bench.floors import fanout_round_trips, floor_server, run_many_round_trips, shifted
from bench.procs import broker_cpu_seconds, postgres_cpu_seconds
from bench.report import Report, Row
from bench.rig import BenchFailure, Rig
from bench.timing import timed_window
from bench.vnfm import VnfmProcess


async def many_ns(cfg: BenchConfig, workdir: Path, report: Report) -> None:
    await _one_setup(cfg, workdir, report, workers=1, db=None)
    for workers in cfg.pg_workers if cfg.pg_url else ():
        assert cfg.pg_url is not None
        db = await create_pg_database(cfg.pg_url)
        try:
            await _one_setup(cfg, workdir, report, workers=workers, db=db)
        finally:
            await drop_pg_database(cfg.pg_url, db)


async def _one_setup(cfg: BenchConfig, workdir: Path, report: Report, *, workers: int, db: str | None) -> None:
    k = cfg.fanout_scripts
    scripts = messages.script_names(k)
    OPS, VNFCS = cfg.many_ops, cfg.many_vnfcs
    total = OPS * VNFCS
    label = "SQLite, 1 worker" if db is None else f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}"
    rig = Rig(cfg.broker, workdir, f"many-{'pg' if db else 'sqlite'}-{workers}w", log_level=cfg.vnfm_log_level, db=db)
    try:
        await rig.start_vnfm(cfg.concurrency)
        for i in range(1, workers):
            await rig.start_worker(cfg.concurrency, tag=f"vnfm-w{i + 1}")
        warm, *hosts = (await rig.start_fleet(total + 1)).hostnames
        await rig.warm_up(warm)
        groups = [hosts[i * VNFCS:(i + 1) * VNFCS] for i in range(OPS)]
        traffics = [shifted(fanout_round_trips(VNFCS, k, delivered_files=k), i * VNFCS) for i in range(OPS)]
        ours: list[float] = []
        floor: list[float] = []
        shares: list[list[int]] = []
        overlap: list[dict[str, int]] = []
        cpu: list[dict[str, float]] = []
        floor_cpu: list[dict[str, float]] = []
        async with floor_server(cfg, total, rig.dir) as server:
            for _ in range(cfg.repeats_for(total)):
                seconds, share, running, used = await _all_at_once(rig, groups, scripts, cfg.op_timeout)
                ours.append(seconds)
                shares.append(share)
                overlap.append(running)
                cpu.append(used)
                f = await run_many_round_trips(server, traffics, concurrency=cfg.concurrency, timeout=cfg.op_timeout)
                if f.replies_ok != f.round_trips:
                    raise BenchFailure(f"the floor had {f.round_trips - f.replies_ok} failed round trips")
                floor.append(f.seconds)
                floor_cpu.append(f.cpu)
        work = total * k
        row = Row.paired(f"many NS ({label})", total, ours, floor, detail={
            "ops": OPS, "vnfcs_per_op": VNFCS, "scripts": k, "workers": workers,
            "db": "sqlite" if db is None else "pg",
            "vnfc_scripts_per_second": work / min(ours), "floor_vnfc_scripts_per_second": work / min(floor),
            "steps_per_worker": shares, "operations_running": overlap, "cpu_seconds": cpu,
            "floor_cpu_seconds": floor_cpu})
        assert row.floor is not None
        peak = min(o["peak"] for o in overlap)
        late = max(o["started_after_an_end"] for o in overlap)
        row.detail["note"] = (f"{OPS} INSTANTIATEs × {VNFCS} VNFCs × {k} scripts at once; {work / row.gvnfm:.0f} "
                              f"VNFC-scripts/s (floor {work / row.floor:.0f}); EMS commands per worker {shares[0]}; "
                              f"operations running at once ≥ {peak} in every batch, {late} started after one ended; "
                              f"{_cpu_note(cpu[0], floor_cpu[0])}")
        report.add(row)
    finally:
        await rig.close()


async def _all_at_once(rig: Rig, groups: list[list[str]], scripts: list[str],
                       timeout: float) -> tuple[float, list[int], dict[str, int], dict[str, float]]:
    """One batch: seconds until every INSTANTIATE is answered, EMS commands per worker, how many
    operations ran at once across the workers (``peak``; ``started_after_an_end``: operations that began
    only after another had ended, which is what a prefetch cap below the batch makes them do), and the
    CPU seconds of the VNFM workers, the fleet (its scripts included), the local PostgreSQL server and
    the broker during the batch."""
    assert rig.nfvo is not None and rig.vnfm is not None
    procs = [rig.vnfm, *rig.workers]
    offsets = [p.log_offset() for p in procs]
    batch = uuid.uuid4().hex[:6]
    msgs = []
    for i, hosts in enumerate(groups):
        name = f"{rig.host_prefix}-ns{batch}-{i}"
        rig.nfvo.hostnames_by_name[name] = hosts
        msgs.append(messages.instantiate(name, len(hosts), scripts))
    with timed_window():
        cpu0 = _cpu(rig, procs)
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(rig.nfvo.send(rig.endpoint, m, timeout=timeout) for m in msgs))
        seconds = time.perf_counter() - t0
        cpu1 = _cpu(rig, procs)
    used = {k: round(cpu1[k] - cpu0[k], 3) for k in cpu0}
    bad = [a.get("action") for a in answers if a.get("action") != "INSTANTIATE"]
    if bad:
        raise BenchFailure(f"{len(bad)} of {len(answers)} INSTANTIATEs were answered {bad[0]}")
    expected = 2 * len(scripts) * sum(len(g) for g in groups)
    deadline = time.monotonic() + 10
    while True:   # the reply may overtake the log lines' flush by a moment
        counts = [p.steps_logged(o) for p, o in zip(procs, offsets, strict=True)]
        ok = [c.get("0", 0) for c in counts]
        if sum(ok) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    failed = sum(v for c in counts for k, v in c.items() if k != "0")
    if sum(ok) != expected or failed:
        raise BenchFailure(f"expected {expected} successful EMS commands, the VNFM workers logged {counts}")
    return seconds, ok, _overlap([e for p, o in zip(procs, offsets, strict=True) for e in p.operation_events(o)]), used


def _cpu(rig: Rig, procs: list[VnfmProcess]) -> dict[str, float]:
    return {"vnfm": sum(p.child.cpu() for p in procs), "ems": sum(f.child.cpu() for f in rig.fleets),
            "postgres": postgres_cpu_seconds() if rig.vnfm_db.startswith("postgresql") else 0.0,
            "broker": broker_cpu_seconds()}


def _cpu_note(ours: dict[str, float], floor: dict[str, float]) -> str:
    """CPU seconds of the first batch: gvnfm's processes (and the store server's) against the floor's."""
    store = f" + PostgreSQL {ours['postgres']:.2f}" if ours.get("postgres") else ""
    note = (f"CPU {ours['vnfm'] + ours['ems'] + ours.get('postgres', 0):.2f} s (VNFM {ours['vnfm']:.2f} + EMS "
            f"{ours['ems']:.2f}{store}) vs floor {floor.get('server', 0) + floor.get('client', 0):.2f} s")
    if ours.get("broker") and floor.get("broker"):
        note += f"; broker {ours['broker']:.2f} vs {floor['broker']:.2f} s"
    return note


def _overlap(events: list[tuple[str, str]]) -> dict[str, int]:
    running = peak = late = 0
    ended = False
    for _ts, kind in sorted(events, key=lambda e: (e[0], e[1] == "start")):   # an end before a start at one ms
        if kind == "start":
            running += 1
            peak = max(peak, running)
            late += ended
        else:
            running -= 1
            ended = True
    return {"peak": peak, "started_after_an_end": late, "operations": sum(k == "start" for _, k in events)}


def _admin_dsn(pg_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database(pg_url: str) -> str:
    """A new, empty database on the server of ``pg_url``; its URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"gvnfm_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_admin_dsn(pg_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(pg_url: str, db_url: str) -> None:
    """Drop the database of ``db_url`` (made by :func:`create_pg_database`), its connections closed."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = make_url(db_url).database
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(_admin_dsn(pg_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
