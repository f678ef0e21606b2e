"""`gvnfm doctor` against a real RabbitMQ (each failure it is for, and its fix), and the VNFM's own
diagnosis when an INSTANTIATE has waited half its EMS deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gvnfm.ops.doctor import Doctor, Verdict
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.settings import VnfmSettings
from tests.support.fakes import FakeNfvo
from tests.support.harness import Harness, instantiate_msg
from tests.support.services import unique


def by_check(verdicts: list[Verdict]) -> dict[str, Verdict]:
    return {v.check: v for v in verdicts}


@pytest.mark.rabbitmq
async def test_doctor_names_each_failure_and_its_fix(amqp_vhost: str, tmp_path: Path) -> None:
    vhost = amqp_vhost.rsplit("/", 1)[1]
    endpoint = unique("doc")
    t = AmqpTransport(amqp_vhost)
    await t.connect()
    try:
        # a queue left by an earlier VNFM with other flags, and no NFVO yet
        await t.declare_queue(endpoint, durable=False, auto_delete=False, bind=False)
        settings = VnfmSettings(broker=amqp_vhost, endpoint=endpoint, type=endpoint, state_dir=tmp_path,
                                ems_username="nobody-" + endpoint, ems_password="wrong")
        v = by_check(await Doctor(settings, advertised="127.0.0.1").run())
        assert v["broker reachable"].status == "OK"
        assert v["VNFM credentials"].status == "OK"
        assert v["EMS credentials"].status == "FAIL" and "change_password" in v["EMS credentials"].fix
        assert v["VNFM endpoint queue"].status == "FAIL" and "other flags" in v["VNFM endpoint queue"].line
        assert f"delete_queue -p {vhost} {endpoint}" in v["VNFM endpoint queue"].fix
        assert v["NFVO registration"].status == "FAIL"
        assert v["broker as the EMSs see it"].status == "WARN" and "nfvo.rabbit.brokerIp" in \
            v["broker as the EMSs see it"].fix
        # the NFVO comes up: its registration queue has a consumer
        nfvo = FakeNfvo(t)
        await nfvo.start()
        v = by_check(await Doctor(settings).run())
        assert v["NFVO registration"].status == "OK", v["NFVO registration"]
        # the command: one line per check, exit 1 on a failure, no password
        cmd = [sys.executable, "-m", "gvnfm.cli.main", "doctor", "--broker", amqp_vhost, "--endpoint", endpoint,
               "--state-dir", str(tmp_path)]
        out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 1 and "FAIL VNFM endpoint queue" in out.stdout, out
        assert "guest:guest" not in out.stdout
    finally:
        await t.close()


async def test_doctor_counts_ems_registrations_and_tails_a_silent_host_log(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    log = hosts / "web-2" / "var" / "log" / "openbaton" / "ems-receiver.log"
    log.parent.mkdir(parents=True)
    log.write_text("line 1\nevent=amqp_connect_retry error='ACCESS_REFUSED'\n")
    d = Doctor(VnfmSettings(state_dir=tmp_path), hosts_dir=hosts)
    d.ems_verdicts({"web-1": "VNFR web", "web-2": "VNFR web"},
                   {"web-1": datetime.now(UTC) - timedelta(seconds=42)})
    v = by_check(d.verdicts)
    assert v["EMSs"].status == "FAIL" and "1 of 2" in v["EMSs"].line
    assert v["EMS web-1"].status == "OK" and "registered 4" in v["EMS web-1"].line
    assert v["EMS web-2"].status == "FAIL" and "ACCESS_REFUSED" in v["EMS web-2"].line


async def test_vnfm_logs_the_diagnosis_once_at_half_the_ems_deadline(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    async with Harness(tmp_path, ems_start_timeout=1.0) as h:
        h.nfvo.register_ems = False
        with caplog.at_level(logging.WARNING):
            reply = await h.call(json.loads(json.dumps(instantiate_msg(2))))
        assert reply["action"] == "ERROR"
        lines = [r.getMessage() for r in caplog.records if "ems_wait_half_deadline" in r.getMessage()]
        assert len(lines) == 1, lines
        hosts = [i["hostname"] for i in reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"]]
        assert all(hn in lines[0] for hn in hosts) and "ems.generic.register" in lines[0]
        # and not when the EMSs answer in time
        caplog.clear()
        h.nfvo.register_ems = True
        with caplog.at_level(logging.WARNING):
            assert (await h.call(instantiate_msg(1)))["action"] == "INSTANTIATE"
        assert "ems_wait_half_deadline" not in caplog.text
