"""The benchmark at smoke size (N = 10, 20 scripts) on the real broker: every case runs, every
operation is answered, the round trips counted on both sides are the expected ones. No timing is
asserted (CI machines differ); the figures only have to be sane numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bench.cli import parser
from bench.config import BenchConfig
from bench.procs import broker_cpu_seconds
from bench.report import Report, Row
from bench.rig import Rig
from bench.runner import run_bench

N = 10
SCRIPTS = 20
FANOUT_SCRIPTS = 3


def _finite_positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


@pytest.mark.rabbitmq
@pytest.mark.timeout(240)
async def test_bench_runs_every_case_and_counts_every_round_trip(amqp_url: str, tmp_path: Path) -> None:
    cfg = BenchConfig(broker=amqp_url, sizes=[N], scripts=SCRIPTS, fanout_scripts=FANOUT_SCRIPTS, repeat=1,
                      workdir=tmp_path, op_timeout=120)
    report = await run_bench(cfg)
    assert report.errors == []
    rows: dict[tuple[str, int], Row] = {(r.case, r.n): r for r in report.rows}
    assert set(rows) == {("ems start", 1), ("ems RSS", 1), ("per-script", 1), ("fan-out", N), ("fan-out c=1", N),
                         ("storm", N), ("memory VNFM/VNFC", N), ("memory EMS/agent", N)}

    # case 0: the light EMS, 5 alternating pairs each with its spread
    for case in ("ems start", "ems RSS"):
        assert len(rows[(case, 1)].ratios) == 5 and rows[(case, 1)].spread

    # case 1: every script delivered and run through the VNFM and the EMS, and the same count raw
    per = rows[("per-script", 1)]
    assert per.detail["gvnfm"]["reply"] == "INSTANTIATE"
    assert per.detail["gvnfm"]["nfvo_requests"] == ["GRANT_OPERATION", "ALLOCATE_RESOURCES"]
    assert per.detail["gvnfm"]["ems_commands_ok"] == [2 * SCRIPTS]
    assert per.detail["gvnfm"]["ems_commands_failed"] == [0]
    floor = per.detail["floor"][0]
    assert floor["round_trips"] == 3 + 2 * SCRIPTS and floor["replies_ok"] == floor["round_trips"]
    assert floor["spawns"] == SCRIPTS and per.detail["floor_server"]["spawned"] >= SCRIPTS
    # the contract's floors: the same traffic with bash per script, then bash under the EMS's spool
    for contract in ("floor_bash", "floor_spool"):
        assert per.detail[contract]["spawns"] == SCRIPTS
        assert per.detail[contract]["replies_ok"] == per.detail[contract]["round_trips"] == 3 + 2 * SCRIPTS
    assert per.detail["floor_server"]["failed"] == 0

    # case 2: N VNFCs × 3 scripts, with the VNFM's bound and with 1, each against its floor
    for case, bound in (("fan-out", cfg.concurrency), ("fan-out c=1", 1)):
        row = rows[(case, N)]
        assert row.detail["concurrency"] == bound
        assert row.detail["gvnfm"]["ems_commands_ok"] == [2 * FANOUT_SCRIPTS * N], case
        assert row.detail["gvnfm"]["ems_commands_failed"] == [0]
        floor = row.detail["floor"][0]
        assert floor["round_trips"] == 3 + 2 * FANOUT_SCRIPTS * N == floor["replies_ok"]
        assert floor["spawns"] == FANOUT_SCRIPTS * N and floor["concurrency"] == bound
        for contract in ("floor_bash", "floor_spool"):   # the contract's floors, same traffic and bound
            assert row.detail[contract]["replies_ok"] == floor["round_trips"], (case, contract)
            assert row.detail[contract]["concurrency"] == bound, (case, contract)
        assert _finite_positive(row.detail["ratio_to_spool_floor"]), case
        # the local broker's CPU is counted on both sides (RabbitMQ runs on this machine in the tests)
        assert row.detail["gvnfm"]["cpu_seconds"][0]["broker"] >= 0 and floor["cpu"]["broker"] >= 0, case
    assert broker_cpu_seconds() > 0   # the tests' RabbitMQ (beam.smp) was found and has run

    # case 3: every agent registered and was matched (the INSTANTIATE waiting for them was answered)
    storm = rows[("storm", N)]
    assert [r["agents"] for r in storm.detail["registered"]] == [N]
    assert [f["replies_ok"] for f in storm.detail["floor"]] == [N]

    # case 4: memory read from the live processes
    vnfm_mem = rows[("memory VNFM/VNFC", N)]
    assert vnfm_mem.detail["rss_before_kib"] > 0
    assert vnfm_mem.detail["hwm_after_kib"] >= vnfm_mem.detail["rss_after_kib"]
    assert math.isfinite(vnfm_mem.gvnfm)
    ems_mem = rows[("memory EMS/agent", N)]
    assert ems_mem.detail["fleet_rss_kib"] > 0 and ems_mem.detail["single_agent_process_rss_kib"] > 0

    for row in report.rows:
        if row.floor is not None:
            assert _finite_positive(row.gvnfm) and _finite_positive(row.floor), row
            assert _finite_positive(row.ratio), row

    # the JSON holds the same rows, and the table renders
    out = tmp_path / "bench.json"
    report.write_json(out)
    data = json.loads(out.read_text())
    assert len(data["rows"]) == len(report.rows) and data["machine"]["nproc"] >= 1
    assert "guest:***@" in data["settings"]["broker"] or "@" not in amqp_url
    assert report.table().row_count == len(report.rows)


@pytest.mark.rabbitmq
@pytest.mark.timeout(240)
async def test_bench_stomp_rows_run_against_the_same_floor(amqp_url: str, tmp_path: Path) -> None:
    """The VNFM and the EMS fleet over STOMP (RabbitMQ's plugin, same broker), the floor on AMQP."""
    from tests.support.services import RABBIT_STOMP_PORT, amqp_to_stomp

    cfg = BenchConfig(broker=amqp_url, stomp_broker=amqp_to_stomp(amqp_url, RABBIT_STOMP_PORT), stomp_size=N,
                      cases=("per-script",), scripts=SCRIPTS, fanout_scripts=FANOUT_SCRIPTS, repeat=1,
                      workdir=tmp_path, op_timeout=120)
    report = await run_bench(cfg)
    assert report.errors == []
    rows: dict[tuple[str, int], Row] = {(r.case, r.n): r for r in report.rows}
    assert set(rows) == {("per-script", 1), ("per-script STOMP", 1), ("fan-out STOMP", N)}
    per = rows[("per-script STOMP", 1)]
    assert per.detail["gvnfm"]["ems_commands_ok"] == [2 * SCRIPTS] and per.detail["gvnfm"]["ems_commands_failed"] == [0]
    assert per.detail["floor"][0]["round_trips"] == 3 + 2 * SCRIPTS
    fan = rows[("fan-out STOMP", N)]
    assert fan.detail["gvnfm"]["ems_commands_ok"] == [2 * FANOUT_SCRIPTS * N]
    assert fan.detail["floor"][0]["round_trips"] == 3 + 2 * FANOUT_SCRIPTS * N == fan.detail["floor"][0]["replies_ok"]
    assert "stomp://guest:***@" in report.settings["stomp_broker"]
    for row in report.rows:
        assert _finite_positive(row.ratio), row
    logs = (tmp_path / "per-script-stomp" / "vnfm.log", tmp_path / f"n{N}-stomp" / "vnfm.log")
    assert all("event=stomp_connected" in log.read_text() for log in logs)


def test_command_line_options_map_onto_the_config() -> None:
    args = parser().parse_args(["--sizes", "10,100", "--scripts", "20", "--cases", "fan-out,storm",
                                "--no-sequential", "--json", "out.json"])
    assert args.sizes == [10, 100] and args.scripts == 20 and args.cases == ("fan-out", "storm")
    assert args.no_sequential and args.json == Path("out.json") and not args.floor_channel_per_queue
    assert parser().parse_args(["--floor-channel-per-queue"]).floor_channel_per_queue
    assert parser().parse_args([]).pg_workers == [2]
    assert parser().parse_args(["--pg-workers", "1,2"]).pg_workers == [1, 2]
    with pytest.raises(SystemExit):
        parser().parse_args(["--cases", "nonsense"])
    with pytest.raises(SystemExit):
        parser().parse_args(["--sizes", "ten"])


def test_rows_compute_ratios_and_targets() -> None:
    row = Row("fan-out", 10, 1.2, 1.0, target=1.5)
    assert row.ratio == pytest.approx(1.2) and row.meets_target is True
    assert Row("fan-out", 10, 2.0, 1.0, target=1.5).meets_target is False
    mem = Row("memory VNFM/VNFC", 1000, 40.0, None, unit="KiB", target=50)
    assert mem.ratio is None and mem.meets_target is True
    report = Report(machine={"nproc": 2}, settings={}, rows=[row, mem])
    assert [r["ratio"] for r in report.as_dict()["rows"]] == [pytest.approx(1.2), None]


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_many_ns_through_one_and_two_workers(amqp_url: str, pg_url: str, tmp_path: Path) -> None:
    cfg = BenchConfig(broker=amqp_url, cases=("many-ns",), many_ops=3, many_vnfcs=2, fanout_scripts=1, repeat=1,
                      workdir=tmp_path, op_timeout=120, pg_url=pg_url, pg_workers=(1, 2))
    report = await run_bench(cfg)
    assert report.errors == []
    rows = {r.case: r for r in report.rows}
    assert set(rows) == {"many NS (SQLite, 1 worker)", "many NS (PostgreSQL, 1 worker)",
                         "many NS (PostgreSQL, 2 workers)"}
    for row in rows.values():
        assert sum(row.detail["steps_per_worker"][0]) == 2 * 3 * 2   # SAVE_SCRIPTS + EXECUTE per VNFC
        assert _finite_positive(row.ratio)
        [running] = row.detail["operations_running"]      # every operation's start and end were logged
        assert running["operations"] == 3 and 1 <= running["peak"] <= 3
        [cpu] = row.detail["cpu_seconds"]                   # the VNFM workers and the fleet worked
        assert cpu["vnfm"] > 0 and cpu["ems"] > 0 and "CPU" in row.detail["note"]
        [floor_cpu] = row.detail["floor_cpu_seconds"]
        assert floor_cpu["server"] > 0 and floor_cpu["client"] > 0
    assert len(rows["many NS (PostgreSQL, 2 workers)"].detail["steps_per_worker"][0]) == 2


@pytest.mark.rabbitmq
async def test_a_rig_deletes_queues_an_agent_never_consumed(amqp_url: str, tmp_path: Path) -> None:
    """What a failed fleet leaves (auto-delete queues that never had a consumer) goes at ``close``."""
    import aio_pika

    rig = Rig(amqp_url, tmp_path, "cleanup")
    rig.agent_hostnames.append(f"{rig.host_prefix}-never")
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        name = f"vnfm.{rig.host_prefix}-never.actions"
        await channel.declare_queue(name, auto_delete=True)
        await rig.close()
        probe = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await probe.declare_queue(name, passive=True)
    finally:
        await conn.close()


async def test_the_registration_micro_benchmark_times_both_sides(amqp_url: str) -> None:
    from bench.register_micro import run

    times, received = await run(amqp_url, count=3, rounds=2)
    assert received == 2 * 3 * 2            # every registration of both sides reached the queue
    assert set(times) == {"fleet", "floor"}
    assert all(len(seconds) == 2 and all(0 < s < 30 for s in seconds) for seconds in times.values())


@pytest.mark.rabbitmq
@pytest.mark.timeout(120)
def test_the_rpc_micro_benchmark_times_the_three_clients(amqp_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import rpc_micro

    assert rpc_micro.main(["--broker", amqp_url, "--count", "20", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [[m, f"c={c}"] for c in (1, 32) for m in ("raw", "rpc", "ems")]
    assert rpc_micro.main(["--stub", "--count", "20", "--rounds", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.rabbitmq
@pytest.mark.timeout(120)
async def test_the_ems_micro_benchmark_answers_every_command_on_both_sides(amqp_url: str) -> None:
    from bench.ems_micro import run

    [figures] = await run(amqp_url, count=5, rounds=1)    # a command answered with a status other than 0 raises
    assert set(figures) == {(side, kind) for side in ("gvnfm", "floor") for kind in ("save", "execute")}
    assert all(wall > 0 and cpu >= 0 for wall, cpu in figures.values())


def test_the_spool_micro_benchmark_runs_the_spool_floor(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import spool_micro

    assert spool_micro.main(["--mode", "floor-spool", "--count", "3"]) == 0
    assert capsys.readouterr().out.startswith("floor-spool wall_ms=")


def test_timed_windows_keep_the_bench_collector_off_until_the_outermost_ends() -> None:
    import gc

    from bench.timing import timed_window

    assert gc.isenabled()
    with timed_window():
        assert not gc.isenabled()
        with timed_window():
            assert not gc.isenabled()
        assert not gc.isenabled()          # the inner window's end does not turn it on
    assert gc.isenabled()
    gc.disable()
    try:
        with timed_window():
            pass
        assert not gc.isenabled()          # off before: off after
    finally:
        gc.enable()


def test_the_executor_micro_benchmark_times_both_modes_and_traces_a_stage(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import executor_micro

    assert executor_micro.main(["--count", "20", "--rounds", "1", "--memory", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [[m, f"c={c}"] for c in (1, 32) for m in ("ems", "executor")]
    assert all("traced peak" in line for line in lines)


@pytest.mark.postgres
def test_the_store_micro_benchmark_times_the_frequent_calls_on_postgresql(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import store_micro

    assert store_micro.main(["--rows", "5", "--pg", pg_url]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PostgreSQL")]
    assert [line.split("(")[0].split()[1] for line in lines] == [
        "set_context", "record_steps,", "get_operation", "record_nfvo_request", "claim_operation,"]
    assert all("server cpu" in line and line.endswith("ms/call") for line in lines)
