"""The VNFM's queues on RabbitMQ carry the reference's flags (durable, auto-delete), so a reference
VNFM started later on the same broker declares them without PRECONDITION_FAILED; a queue left with
other flags is used as it is, with one log line that names the flags and how to delete it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gvnfm.transport.amqp import AmqpTransport
from gvnfm.vnfm.queues import differing_flag
from tests.support.fakes import FakeNfvo
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq


def test_the_broker_refusal_names_the_flag_and_the_existing_value() -> None:
    text = ("cannot declare queue 'generic': PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue "
            "'generic' in vhost '/': received 'true' but current is 'false'")
    assert differing_flag(text) == ("auto_delete", False)
    assert differing_flag("ACCESS_REFUSED") is None


async def test_a_reference_vnfm_declares_the_queues_gvnfm_left(amqp_vhost: str, tmp_path: Path) -> None:
    endpoint = unique("flags")
    peer = AmqpTransport(amqp_vhost)
    await peer.connect()
    nfvo = FakeNfvo(peer)
    await nfvo.start()
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm")
    try:
        await vnfm.start()
        await vnfm.wait_for_log("event=vnfm_started", timeout=60)
        # the reference's declarations (VnfmSpringHelperRabbit, EMSConfiguration) while gvnfm runs: accepted
        for queue in (endpoint, f"ems.{endpoint}.register"):
            await peer.declare_queue(queue, durable=True, auto_delete=True, bind=False)
        assert "queue_flags_differ" not in vnfm.log()
        assert await vnfm.terminate() == 0
        # auto-delete: gone with gvnfm's consumer (the NFVO's queue check then marks the endpoint inactive),
        # so a declaration with any flags succeeds now
        await peer.declare_queue(endpoint, durable=False, auto_delete=False, bind=False)
    finally:
        await vnfm.kill()
        await peer.close()


async def test_a_queue_left_with_other_flags_is_used_and_named_in_one_line(amqp_vhost: str, tmp_path: Path) -> None:
    endpoint = unique("flags")
    peer = AmqpTransport(amqp_vhost)
    await peer.connect()
    nfvo = FakeNfvo(peer)
    await nfvo.start()
    # left by a VNFM configured otherwise (gvnfm before, with vnfm.rabbitmq.autodelete=false)
    await peer.declare_queue(endpoint, durable=True, auto_delete=False)
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm")
    try:
        await vnfm.start()
        await vnfm.wait_for_log("event=vnfm_started", timeout=60)
        lines = [line for line in vnfm.log().splitlines() if "queue_flags_differ" in line]
        assert len(lines) == 1, vnfm.log()
        assert f"queue={endpoint} existing=durable:true,auto_delete:false configured=durable:true," \
               "auto_delete:true" in lines[0]
        assert f"rabbitmqctl delete_queue {endpoint} -p {amqp_vhost.rsplit('/', 1)[1]}" in lines[0]
        assert "Traceback" not in vnfm.log()
        # and the VNFM serves on it: a LOG_REQUEST is answered
        raw = await peer.rpc(endpoint, json.dumps({"action": "LOG_REQUEST", "vnfrName": "x",
                                                   "hostname": "x-1"}).encode(), timeout=60)
        assert json.loads(raw)["action"] == "LOG_REQUEST"
        assert await vnfm.terminate() == 0
    finally:
        await vnfm.kill()
        await peer.close()
