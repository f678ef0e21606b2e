"""A script fails on one VNFC; the fixed script is pushed with UPDATE; RESUME completes the operation
and the failed script runs again only where it had failed (real RabbitMQ, PostgreSQL, EMS agents,
`gvnfm vnfm` processes)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.cluster import SCRIPTS, Cluster, instantiate, runs

pytestmark = pytest.mark.rabbitmq

# s2.sh fails on the first VNFC that gets to it, every time; the fixed version does not
BROKEN = b"""#!/bin/bash
echo "$hostname $(basename "$0")" >> "$outdir/attempts.log"
if mkdir "$outdir/bad" 2>/dev/null; then echo "$hostname" > "$outdir/bad/host"; fi
sleep 0.1
if [ "$(cat "$outdir/bad/host" 2>/dev/null)" = "$hostname" ]; then echo "s2: config broken on $hostname" >&2; exit 4; fi
echo "$hostname $(basename "$0")" >> "$outdir/runs.log"
"""
FIXED = b"""#!/bin/bash
echo "$hostname $(basename "$0")" >> "$outdir/attempts.log"
echo "$hostname $(basename "$0")" >> "$outdir/runs.log"
"""


@pytest.fixture
async def cluster(amqp_vhost: str, pg_db: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(amqp_vhost, pg_db, tmp_path, workers=2)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_update_then_resume_reruns_the_failed_script_only_where_it_failed(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    cid = await cluster.send(instantiate("resumable", outdir, scripts={"s2.sh": BROKEN}))
    failed = await cluster.wait_reply(cid)
    assert failed["action"] == "ERROR", failed
    bad_host = (outdir / "bad" / "host").read_text().strip()
    assert bad_host in failed["exception"]["detailMessage"]
    assert "config broken" in failed["exception"]["detailMessage"]
    vnfr = failed["virtualNetworkFunctionRecord"]
    hosts = [i["hostname"] for i in vnfr["vdu"][0]["vnfc_instance"]]

    cid = await cluster.send({"action": "UPDATE", "vnfr": vnfr, "script": {"name": "s2.sh", "payload": list(FIXED)}})
    assert (await cluster.wait_reply(cid))["action"] == "UPDATE"
    cid = await cluster.send({"action": "RESUME", "vnfr": vnfr})
    resumed = await cluster.wait_reply(cid)
    assert resumed["action"] == "INSTANTIATE", resumed

    assert Counter(runs(outdir)) == Counter({(h, s): 1 for h in hosts for s in SCRIPTS})
    attempts = Counter(tuple(line.split()) for line in (outdir / "attempts.log").read_text().splitlines())
    assert attempts == Counter({**{(h, "s2.sh"): 1 for h in hosts}, (bad_host, "s2.sh"): 2})
    assert json.dumps(resumed).count('"state": "error"') == 0
