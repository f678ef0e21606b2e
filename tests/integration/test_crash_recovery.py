"""Operations survive crashes: a VNFM worker killed with SIGKILL at a random step of an INSTANTIATE
across 3 VNFCs, many times over (PostgreSQL and SQLite); a broker restarted in the middle of an
operation; several workers sharing the work. Every run ends with each script having run exactly once
per VNFC (the scripts append to a file) and exactly one reply."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.cluster import SCRIPTS, Cluster, instantiate, runs
from tests.support.rabbit import PrivateRabbit

pytestmark = pytest.mark.rabbitmq

ROUNDS = int(os.environ.get("GVNFM_CRASH_ROUNDS", "12"))


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        return
    yield request.getfixturevalue("pg_db")


@pytest.fixture
async def cluster(amqp_vhost: str, db_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(amqp_vhost, db_url, tmp_path)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_sigkill_at_a_random_step_runs_every_script_once_and_replies_once(
        cluster: Cluster, tmp_path: Path, db_url: str) -> None:
    rng = random.Random(os.environ.get("GVNFM_CRASH_SEED", "7"))
    rounds = ROUNDS if db_url.startswith("postgresql") else max(1, ROUNDS // 2)
    cids = []
    for round_no in range(rounds):
        outdir = tmp_path / f"round{round_no}"
        outdir.mkdir()
        kill_after = rng.randrange(0, 9)     # script lines seen before the kill
        cid = await cluster.send(instantiate(f"vnf{round_no}", outdir))
        cids.append(cid)
        pid = await cluster.holder_pid(cid)
        while len(runs(outdir)) < kill_after and not cluster.replies[cid]:
            await asyncio.sleep(0.01)
        if not cluster.replies[cid]:
            os.kill(pid, signal.SIGKILL)
            for w in cluster.workers:
                if w.proc is not None and w.proc.pid == pid:
                    await w.proc.wait()
            cluster.workers = [w for w in cluster.workers if w.proc is None or w.proc.returncode is None]
            await cluster.add_worker()
        reply = await cluster.wait_reply(cid)
        assert reply["action"] == "INSTANTIATE", reply
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        seen = Counter(runs(outdir))
        assert seen == Counter({(h, s): 1 for h in hosts for s in SCRIPTS}), (round_no, kill_after, seen)
    await cluster.quiesce()        # no worker left to answer: each operation was answered exactly once
    assert {cid: cluster.replies[cid] for cid in cids} == dict.fromkeys(cids, 1)


async def test_three_workers_deploy_30_vnfrs_at_once_none_twice(amqp_vhost: str, pg_db: str, tmp_path: Path) -> None:
    db = pg_db
    c = Cluster(amqp_vhost, db, tmp_path, workers=3)
    try:
        await c.start()
        outdir = tmp_path / "out"
        outdir.mkdir()
        cids = [await c.send(instantiate(f"many{i}", outdir, n=1)) for i in range(30)]
        replies = [await c.wait_reply(cid, timeout=180) for cid in cids]
        assert all(r["action"] == "INSTANTIATE" for r in replies)
        await c.quiesce()
        assert all(c.replies[cid] == 1 for cid in cids)
        seen = Counter(runs(outdir))
        assert len(seen) == 30 * 3 and set(seen.values()) == {1}
        workers = {(await c.store.get_operation(c.op_ids[cid])).worker for cid in cids}  # type: ignore[union-attr]
        assert len(workers) >= 2, workers   # the work was shared
    finally:
        await c.close()


#: scripts slow enough that the operation is still running when the broker comes back
SLOW = b"""#!/bin/bash
echo "$hostname $(basename "$0")" >> "$outdir/runs.log"
sleep 2
"""


async def test_broker_restart_in_the_middle_of_an_operation(private_rabbit: PrivateRabbit, tmp_path: Path) -> None:
    c = Cluster(private_rabbit.url, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", tmp_path, workers=1)
    try:
        await c.start()
        outdir = tmp_path / "out"
        outdir.mkdir()
        cid = await c.send(instantiate("restart", outdir, scripts={s: SLOW for s in SCRIPTS}))
        op_id = c.op_ids[cid]
        while len(runs(outdir)) < 4:           # the second script is running (4 s of scripts to go)
            await asyncio.sleep(0.01)
        await asyncio.to_thread(private_rabbit.restart)
        reply = await c.wait_reply(cid, timeout=120)
        assert reply["action"] == "INSTANTIATE", reply
        worker = c.workers[0]
        # the broker redelivered the message to the same worker, which waited for its own run and
        # answered the redelivery as a duplicate without a second reply
        await worker.wait_for_log(f"event=duplicate_finished op={op_id}", timeout=60)
        await c.quiesce()
        assert c.replies[cid] == 1
        lines = worker.log().splitlines()

        def first(needle: str) -> int:
            return next(i for i, line in enumerate(lines) if needle in line)

        # the connection was lost while the operation was RUNNING, and came back before it ended
        start, end = first(f"event=operation_start op={op_id}"), first(f"event=operation_end op={op_id}")
        assert start < first("event=amqp_connection_lost") < first("event=amqp_reconnected") < end
        assert start < first(f"event=operation_running_here op={op_id}") < end
        assert sum(f"event=operation_start op={op_id}" in line for line in lines) == 1
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        assert Counter(runs(outdir)) == Counter({(h, s): 1 for h in hosts for s in SCRIPTS})
    finally:
        await c.close()
