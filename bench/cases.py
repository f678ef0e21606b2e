"""The cases. Each measures gvnfm and its floor in the same run, alternating, and adds rows.

1. per-script: one VNFC, ``scripts`` empty scripts in one event; floor: the same round trips
   (delivery, then one per script spawning /bin/true) from a raw aio-pika client to a raw consumer.
2. fan-out: N VNFCs × ``fanout_scripts`` scripts, with the VNFM's concurrency and with 1; floor: the
   same round trips in the same stages under the same bound.
3. storm: N EMS agents register at once while the VNFM waits; floor: N raw publishes and consumes.
4. memory: VNFM RSS per managed VNFC at the largest N, EMS agent RSS per agent.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from bench import messages
from bench.config import BenchConfig
from bench.fleet import FleetProcess
from bench.floors import (
    FloorResult,
    FloorServer,
    RoundTrips,
    fanout_round_trips,
    floor_server,
    run_round_trips,
    storm_floor,
)
from bench.report import Report, Row
from bench.rig import OpResult, Rig

log = logging.getLogger("bench")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _op_detail(results: list[OpResult], expected: int) -> dict[str, Any]:
    last = results[-1]
    return {"runs": [round(r.seconds, 4) for r in results], "reply": last.action,
            "ems_commands_expected": expected, "ems_commands_ok": [r.steps_ok for r in results],
            "ems_commands_failed": [r.steps_failed for r in results], "nfvo_requests": last.nfvo_requests,
            "cpu_seconds": [r.cpu for r in results]}


def _cpu_note(ours: list[OpResult], floor: list[FloorResult]) -> str:
    """CPU seconds of the first measurement: gvnfm (VNFM + EMS) against the floor (consumer + client),
    and the local broker's during each (when one is found)."""
    g, f = ours[0].cpu, floor[0].cpu
    note = (f"CPU {g.get('vnfm', 0) + g.get('ems', 0):.2f} s (VNFM {g.get('vnfm', 0):.2f} + EMS "
            f"{g.get('ems', 0):.2f}) vs floor {f.get('server', 0) + f.get('client', 0):.2f} s")
    if g.get("broker") and f.get("broker"):
        note += f"; broker {g['broker']:.2f} vs {f['broker']:.2f} s"
    return note


async def _contract_runs(server: FloorServer, traffic: RoundTrips, *, concurrency: int,
                         timeout: float) -> tuple[FloorResult, FloorResult]:
    """The same traffic once with bash per script, once with bash under the EMS's spool."""
    bash = await run_round_trips(server, traffic, concurrency=concurrency, timeout=timeout, spawn="bash")
    spool = await run_round_trips(server, traffic, concurrency=concurrency, timeout=timeout, spawn="spool")
    return bash, spool


def _contract_floors(g: float, bash: FloorResult, spool: FloorResult) -> dict[str, object]:
    """The floors of what the EMS contract costs (bash per script) and what its crash-safe spool
    costs on top (record, output files, status wrapper), run once each after the paired figures."""
    return {"floor_bash": bash.as_dict(), "ratio_to_bash_floor": g / bash.seconds,
            "floor_spool": spool.as_dict(), "ratio_to_spool_floor": g / spool.seconds}


def _contract_note(g: float, bash: FloorResult, spool: FloorResult) -> str:
    return f"{g / bash.seconds:.2f}× the bash floor, {g / spool.seconds:.2f}× the spool floor"


# -- case 1 -------------------------------------------------------------------------------------------
async def per_script(cfg: BenchConfig, workdir: Path, report: Report, *, stomp: bool = False) -> None:
    """With ``stomp``: the VNFM and the EMS over STOMP (``cfg.stomp_broker``), the floor unchanged."""
    s = cfg.scripts
    scripts = messages.script_names(s)
    rig = Rig(cfg.broker, workdir, "per-script-stomp" if stomp else "per-script", log_level=cfg.vnfm_log_level,
              gvnfm_url=cfg.stomp_broker if stomp else None)
    try:
        await rig.start_vnfm(cfg.concurrency)
        warm, host = (await rig.start_fleet(2)).hostnames
        await rig.warm_up(warm)
        traffic = fanout_round_trips(1, s, delivered_files=s)
        expected = 2 * s
        ours: list[OpResult] = []
        floor: list[FloorResult] = []
        async with floor_server(cfg, 1, rig.dir) as server:
            for _ in range(max(1, cfg.repeat)):
                ours.append(await rig.instantiate([host], scripts, timeout=cfg.op_timeout, expect_steps=expected))
                floor.append(await run_round_trips(server, traffic, concurrency=cfg.concurrency,
                                                   timeout=cfg.op_timeout))
            bash, spool = await _contract_runs(server, traffic, concurrency=cfg.concurrency, timeout=cfg.op_timeout)
        g, f = _median([r.seconds for r in ours]), _median([r.seconds for r in floor])
        report.add(Row.paired("per-script STOMP" if stomp else "per-script", 1, [r.seconds for r in ours],
                              [r.seconds for r in floor], target=1.2,
                              detail={
            "scripts": s, **_contract_floors(g, bash, spool),
            "note": f"{s} scripts; +{(g - f) / s * 1000:.2f} ms/script; {_contract_note(g, bash, spool)}; "
                    f"{_cpu_note(ours, floor)}",
            "gvnfm": _op_detail(ours, expected), "floor": [r.as_dict() for r in floor],
            "floor_server": server.stats}))
    finally:
        await rig.close()


# -- case 2 with the VNFM and the EMSs over STOMP -------------------------------------------------------
async def fanout_stomp(cfg: BenchConfig, n: int, workdir: Path, report: Report) -> None:
    """Fan-out at ``n`` with the VNFM and the EMS fleet over STOMP (``cfg.stomp_broker``); the NFVO and
    the floor on AMQP, as in the AMQP row: the same floor for both."""
    k = cfg.fanout_scripts
    scripts = messages.script_names(k)
    expected = 2 * k * n
    traffic = fanout_round_trips(n, k, delivered_files=k)
    rig = Rig(cfg.broker, workdir, f"n{n}-stomp", log_level=cfg.vnfm_log_level, gvnfm_url=cfg.stomp_broker)
    try:
        await rig.start_vnfm(cfg.concurrency)
        warm, *hosts = (await rig.start_fleet(n + 1)).hostnames
        await rig.warm_up(warm)
        ours: list[OpResult] = []
        floor: list[FloorResult] = []
        async with floor_server(cfg, n, rig.dir) as server:
            for _ in range(cfg.repeats_for(n)):
                ours.append(await rig.instantiate(hosts, scripts, timeout=cfg.op_timeout, expect_steps=expected))
                floor.append(await run_round_trips(server, traffic, concurrency=cfg.concurrency,
                                                   timeout=cfg.op_timeout))
        g, f = _median([r.seconds for r in ours]), _median([r.seconds for r in floor])
        report.add(Row("fan-out STOMP", n, g, f, target=1.5, detail={
            "scripts": k, "concurrency": cfg.concurrency,
            "note": f"VNFM and EMSs over STOMP, floor on AMQP; c={cfg.concurrency}; {_cpu_note(ours, floor)}",
            "gvnfm": _op_detail(ours, expected), "floor": [r.as_dict() for r in floor], "floor_server": server.stats}))
    finally:
        await rig.close()


# -- cases 2, 3, 4 at one size ------------------------------------------------------------------------
async def at_size(cfg: BenchConfig, n: int, workdir: Path, report: Report, *, memory: bool) -> None:
    k = cfg.fanout_scripts
    scripts = messages.script_names(k)
    expected = 2 * k * n
    traffic = fanout_round_trips(n, k, delivered_files=k)
    rig = Rig(cfg.broker, workdir, f"n{n}", log_level=cfg.vnfm_log_level)
    do_fanout = "fan-out" in cfg.cases or memory
    try:
        vnfm = await rig.start_vnfm(cfg.concurrency)
        fleet = await rig.start_fleet(n + 1)
        warm, *hosts = fleet.hostnames
        await rig.warm_up(warm)
        if do_fanout:
            mem0 = vnfm.memory()
            ours: list[OpResult] = []
            floor: list[FloorResult] = []
            async with floor_server(cfg, n, rig.dir) as server:
                for i in range(cfg.repeats_for(n)):
                    ours.append(await rig.instantiate(hosts, scripts, timeout=cfg.op_timeout, expect_steps=expected))
                    if i == 0:
                        mem1 = vnfm.memory()
                        fleet_mem = fleet.memory()
                    floor.append(await run_round_trips(server, traffic, concurrency=cfg.concurrency,
                                                       timeout=cfg.op_timeout))
                bash, spool = await _contract_runs(server, traffic, concurrency=cfg.concurrency,
                                                   timeout=cfg.op_timeout)
            g = _median([r.seconds for r in ours])
            waves = -(-n // cfg.concurrency)
            if "fan-out" in cfg.cases:
                report.add(Row.paired("fan-out", n, [r.seconds for r in ours], [r.seconds for r in floor],
                                      target=1.3, detail={
                    "scripts": k, "concurrency": cfg.concurrency, **_contract_floors(g, bash, spool),
                    "note": f"c={cfg.concurrency}; {g / waves * 1000:.0f} ms per ⌈N/c⌉; "
                            f"{_contract_note(g, bash, spool)}; {_cpu_note(ours, floor)}",
                    "seconds_per_wave": g / waves, "gvnfm": _op_detail(ours, expected),
                    "floor": [r.as_dict() for r in floor], "floor_server": server.stats}))
            if memory:
                await _memory_rows(rig, n, mem0, mem1, fleet_mem, report)
        if "latency" in cfg.cases:
            await _latency(cfg, rig, n, hosts, report)
        if "storm" in cfg.cases:
            await _storm(cfg, rig, n, report)
        if "fan-out" in cfg.cases and cfg.sequential:
            await _sequential(cfg, rig, n, hosts, warm, report)
    finally:
        await rig.close()


async def _memory_rows(rig: Rig, n: int, before: dict[str, int], after: dict[str, int],
                       fleet_mem: dict[str, int], report: Report) -> None:
    retained = (after["VmRSS"] - before["VmRSS"]) / n
    peak = (after["VmHWM"] - before["VmRSS"]) / n
    # the target is per VNFC at N = 1000: at small N the process's own noise dominates the delta
    report.add(Row("memory VNFM/VNFC", n, peak, None, unit="KiB", target=25 if n >= 1000 else None, detail={
        "note": f"peak RSS growth per VNFC; retained {retained:.1f} KiB/VNFC",
        "rss_before_kib": before["VmRSS"], "rss_after_kib": after["VmRSS"], "hwm_after_kib": after["VmHWM"],
        "retained_kib_per_vnfc": retained, "peak_kib_per_vnfc": peak}))
    # EMS: the fleet process with n + 1 agents against one with a single agent
    single = await rig.start_fleet(1, tag="fleet-single")
    one = single.memory()
    await rig.stop_fleet(single)
    per_agent = (fleet_mem["VmRSS"] - one["VmRSS"]) / n
    report.add(Row("memory EMS/agent", n, per_agent, None, unit="KiB", detail={
        "note": f"in a fleet of {n + 1}; one agent alone: {one['VmRSS'] / 1024:.1f} MiB RSS",
        "fleet_rss_kib": fleet_mem["VmRSS"], "single_agent_process_rss_kib": one["VmRSS"]}))


async def _storm(cfg: BenchConfig, rig: Rig, n: int, report: Report) -> None:
    """``repeats_for(n)`` alternating pairs, each with a fleet of its own held at its registration."""
    assert rig.nfvo is not None
    ours: list[float] = []
    floors: list[float] = []
    registered: list[object] = []
    floor_runs: list[dict[str, object]] = []
    for _ in range(cfg.repeats_for(n)):
        fleet = await rig.start_fleet(n, hold=True, tag="storm")

        async def go(_hostnames: list[str], fleet: FleetProcess = fleet) -> None:
            fleet.go()   # the agents publish their registrations now, while the VNFM waits for them

        rig.nfvo.on_allocated = go
        try:
            result = await rig.instantiate(fleet.hostnames, [], timeout=cfg.op_timeout, expect_steps=0)
        finally:
            rig.nfvo.on_allocated = None
        assert result.since_allocated is not None
        ours.append(result.since_allocated)
        registered.append(await fleet.registered())
        await rig.stop_fleet(fleet)
        floor = await storm_floor(cfg.broker, n, timeout=cfg.op_timeout)
        floors.append(floor.seconds)
        floor_runs.append(floor.as_dict())
    report.add(Row.paired("storm", n, ours, floors, target=2.0 if n <= 10 else None, detail={
        "note": f"{n} agents register at once; until INSTANTIATE is answered",
        "registered": registered, "floor": floor_runs}))


async def _sequential(cfg: BenchConfig, rig: Rig, n: int, hosts: list[str], warm: str, report: Report) -> None:
    k = cfg.fanout_scripts
    scripts = messages.script_names(k)
    expected = 2 * k * n
    await rig.start_vnfm(1, tag="vnfm-c1")
    await rig.warm_up(warm)
    traffic = fanout_round_trips(n, k, delivered_files=k)
    ours: list[OpResult] = []
    floor: list[FloorResult] = []
    async with floor_server(cfg, n, rig.dir) as server:
        for _ in range(cfg.repeats_for(n)):
            ours.append(await rig.instantiate(hosts, scripts, timeout=cfg.op_timeout, expect_steps=expected))
            floor.append(await run_round_trips(server, traffic, concurrency=1, timeout=cfg.op_timeout))
        bash, spool = await _contract_runs(server, traffic, concurrency=1, timeout=cfg.op_timeout)
    g = _median([r.seconds for r in ours])
    bounded = next((r for r in report.rows if r.case == "fan-out" and r.n == n), None)
    gain = f"; {g / bounded.gvnfm:.1f}× the time with c={cfg.concurrency}" if bounded and bounded.gvnfm else ""
    report.add(Row.paired("fan-out c=1", n, [r.seconds for r in ours], [r.seconds for r in floor], target=1.3, detail={
        "scripts": k, "concurrency": 1, **_contract_floors(g, bash, spool),
        "note": f"reference order; {g / n * 1000:.1f} ms per VNFC{gain}; {_contract_note(g, bash, spool)}; "
                f"{_cpu_note(ours, floor)}",
        "gvnfm": _op_detail(ours, expected), "floor": [r.as_dict() for r in floor], "floor_server": server.stats}))


async def _latency(cfg: BenchConfig, rig: Rig, n: int, hosts: list[str], report: Report) -> None:
    """Fan-out whose scripts sleep: the machine is not the limit, the bound is (⌈N/c⌉ waves per script)."""
    k, sleep, c = cfg.fanout_scripts, cfg.script_sleep, cfg.concurrency
    scripts = [f"sleep{i}.sh" for i in range(k)]
    expected = 2 * k * n
    traffic = fanout_round_trips(n, k, delivered_files=k)
    async with floor_server(cfg, n, rig.dir) as server:
        ours = await rig.instantiate(hosts, scripts, timeout=cfg.op_timeout, expect_steps=expected,
                                     payload=f"sleep {sleep}\n".encode())
        floor = await run_round_trips(server, traffic, concurrency=c, timeout=cfg.op_timeout, spawn=f"sleep:{sleep}")
    waves = -(-n // c)
    bound, sequential = k * waves * sleep, k * n * sleep
    report.add(Row("fan-out sleep", n, ours.seconds, floor.seconds, detail={
        "scripts": k, "concurrency": c, "script_sleep": sleep, "waves_bound_seconds": bound,
        "sequential_bound_seconds": sequential, "gvnfm": _op_detail([ours], expected), "floor": floor.as_dict(),
        "note": f"scripts sleep {sleep:g} s, c={c}: k·⌈N/c⌉·sleep = {bound:.2f} s; one at a time would be ≥ "
                f"{sequential:.1f} s"}))
