"""Day-2 operations end to end on the local orchestrator over RabbitMQ (each host's EMS a process of
its own), driven from the command line through the control API: scale out (a second one at the same
time is refused with 409) then in (the dependent VNF's scripts see the right ``removing_*`` values),
heal with a cause, a standby switch, the UPDATE event, a script update followed by RESUME of a failed
START, an execute (a failing one names its VNFCs and changes no state), the logs of a VNFC (also
followed), and bad requests that change nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gvnfm.api.server import ApiServer
from gvnfm.cli.main import app
from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
from gvnfm.orchestrator.records import NetworkServiceRecord

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

EXAMPLES = Path(__file__).parents[2] / "examples"
HEAL = """#!/bin/bash
echo "heal.sh on $hostname: cause=$cause"
"""


def chain_with_heal(tmp: Path) -> Path:
    root = tmp / "chain"
    shutil.copytree(EXAMPLES / "chain", root)
    vnfd_path = root / "app" / "vnfd.json"
    vnfd = json.loads(vnfd_path.read_text())
    vnfd["lifecycle_event"].append({"event": "HEAL", "lifecycle_events": ["heal.sh"]})
    vnfd["lifecycle_event"].append({"event": "UPDATE", "lifecycle_events": ["update.sh"]})
    vnfd_path.write_text(json.dumps(vnfd, indent=2))
    (root / "app" / "scripts" / "heal.sh").write_text(HEAL)
    (root / "app" / "scripts" / "update.sh").write_text('#!/bin/bash\necho "update.sh on $hostname"\n')
    return root


async def cli(state: Path, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--state-dir", str(state)])
    return result.exit_code, result.output


@pytest.fixture
async def running(amqp_vhost: str, tmp_path: Path) -> AsyncIterator[tuple[LocalRuntime, NetworkServiceRecord, Path]]:
    state = tmp_path / "state"
    rt = LocalRuntime(RuntimeOptions(state_dir=state, broker=amqp_vhost, capacity=12, ems_start_timeout=60,
                                     script_timeout=60))
    await rt.start()
    api = ApiServer(rt)
    await api.start()
    nsr = await rt.deploy(chain_with_heal(tmp_path))
    try:
        yield rt, nsr, state
    finally:
        await rt.teardown(nsr)
        await api.stop()
        await rt.close()


async def test_day2_operations_from_the_command_line(running: tuple[LocalRuntime, NetworkServiceRecord, Path]) -> None:
    rt, nsr, state = running
    assert rt.nfvo is not None
    assert nsr.status == "ACTIVE"
    web_host = nsr.vnfrs["web"].hosts[0]
    code, out = await cli(state, "status")
    assert code == 0 and "chain ACTIVE" in out and web_host in out

    # scale out app: the new VNFC is instantiated, configured, started; web is reconfigured with it.
    # A second scale-out at the same time is refused (409), not run on top of the first.
    first = asyncio.create_task(cli(state, "scale-out", "app"))
    while rt.nfvo.locks.holder(nsr.id, "app") is None and not first.done():
        await asyncio.sleep(0.005)
    info = json.loads((state / "api.json").read_text())
    url = info["url"]
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {info['token']}"}) as client:
        second = await client.post(f"{url}/api/v1/ns-records/current/vnfrecords/app/scale-out", json={})
    code, out = await first
    assert code == 0, out
    assert second.status_code == 409 and "busy with SCALE_OUT" in second.json()["detail"], second.text
    new_app = out.split()[1]
    assert new_app in nsr.vnfrs["app"].hosts and len(nsr.vnfrs["app"].hosts) == 3
    code, out = await cli(state, "logs", "web", web_host)
    assert code == 0 and f"backend {new_app} at " in out, out
    # the new VNFC got its CONFIGURE with db's parameters (the dependency), between INSTANTIATE and START
    code, out = await cli(state, "logs", "app", new_app)
    assert code == 0 and "database is db-" in out and "schema orders" in out, out
    assert out.index("install.sh") < out.index("db_configure.sh") < out.index("start.sh"), out

    # scale in: web's SCALE_IN script sees removing_hostname / removing_private of the removed VNFC
    code, out = await cli(state, "scale-in", "app", new_app)
    assert code == 0, out
    assert new_app not in nsr.vnfrs["app"].hosts
    for _ in range(200):   # SCALE_IN gets no answer: wait for the script's output in the logs
        code, out = await cli(state, "logs", "web", web_host)
        if f"backend {new_app} removed" in out:
            break
        await asyncio.sleep(0.1)
    assert f"scale_in.sh on {web_host}: backend {new_app} removed" in out

    # heal with a cause
    app_host = nsr.vnfrs["app"].hosts[0]
    code, out = await cli(state, "heal", "app", app_host, "--cause", "disk-full")
    assert code == 0, out
    code, out = await cli(state, "logs", "app", app_host, "--follow", "--interval", "0.1", "--timeout", "0.3")
    assert code == 0 and f"heal.sh on {app_host}: cause=disk-full" in out, out

    # the UPDATE event
    code, out = await cli(state, "update", "app")
    assert code == 0, out
    code, out = await cli(state, "logs", "app", app_host)
    assert f"update.sh on {app_host}" in out, out

    # standby: a VNFC created in STANDBY, then switched to ACTIVE (START runs on it)
    code, out = await cli(state, "scale-out", "app", "--standby")
    assert code == 0 and "(STANDBY)" in out, out
    standby = out.split()[1]
    code, out = await cli(state, "heal", "app", standby, "--cause", "switchToStandby")
    assert code == 0 and "state ACTIVE" in out, out
    code, out = await cli(state, "logs", "app", standby)
    assert "start.sh on " + standby in out

    # execute an ad-hoc script everywhere
    script = state.parent / "adhoc.sh"
    script.write_text('#!/bin/bash\necho "adhoc on $hostname"\n')
    code, out = await cli(state, "execute", "app", str(script))
    assert code == 0 and all(f"adhoc on {h}" in out for h in nsr.vnfrs["app"].hosts), out
    # one that fails on one VNFC: exit 1 naming it; an ad-hoc script is no lifecycle event, app stays ACTIVE
    script.write_text(f'#!/bin/bash\nif [ "$hostname" = {app_host} ]; then echo broken >&2; exit 4; fi\n')
    code, out = await cli(state, "execute", "app", str(script))
    assert code == 1 and f"failed on 1 VNFC(s): {app_host}" in out and "broken" in out, out
    assert nsr.vnfrs["app"].status == "ACTIVE" and nsr.status == "ACTIVE"

    # a failing START, the script fixed with update-script, then RESUME: runs again only where it failed
    good_start = (EXAMPLES / "chain" / "db" / "scripts" / "start.sh").read_text()
    bad = state.parent / "bad.sh"
    bad.write_text("#!/bin/bash\necho 'cannot bind port' >&2\nexit 3\n")
    assert (await cli(state, "update-script", "db", "start.sh", str(bad)))[0] == 0
    code, out = await cli(state, "stop", "db")
    assert code == 0, out
    code, out = await cli(state, "start", "db")
    assert code == 1 and "cannot bind port" in out and "start.sh" in out, out
    assert nsr.vnfrs["db"].status == "ERROR"
    fixed = state.parent / "fixed.sh"
    fixed.write_text(good_start)
    assert (await cli(state, "update-script", "db", "start.sh", str(fixed)))[0] == 0
    code, out = await cli(state, "resume", "db")
    assert code == 0 and "ACTIVE" in out, out
    db_host = nsr.vnfrs["db"].hosts[0]
    code, out = await cli(state, "logs", "db", db_host)
    assert out.count("Output of Script : start.sh") == 2   # deploy + resume; the failed run is an error
    assert "cannot bind port" in out                      # in the error log

    # bad requests: a clear error, nothing changed
    before = {n: list(v.hosts) for n, v in nsr.vnfrs.items()}
    code, out = await cli(state, "scale-out", "db")
    assert code == 1 and "scale" in out.lower(), out
    code, out = await cli(state, "heal", "app", "app-0000000", "--cause", "x")
    assert code == 2 and "no VNFC instance 'app-0000000'" in out, out     # an unknown name: usage
    code, out = await cli(state, "update-script", "db", "nope.sh", str(fixed))
    assert code == 2 and "no script 'nope.sh'" in out, out
    assert {n: list(v.hosts) for n, v in nsr.vnfrs.items()} == before
