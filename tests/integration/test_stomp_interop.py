"""STOMP and AMQP peers on one broker: the gvnfm VNFM and `gvnfm ems` processes, each on its own
protocol, and the reference (Spring) VNFM's AMQP shapes driving an EMS that speaks STOMP.

RabbitMQ: the same exchange, queues and routing keys whatever the protocol (a virtual host of the
test's own). ActiveMQ: the VNFM's NFVO side on AMQP (RabbitMQ) and its EMS side on ActiveMQ, the
EMSs on ActiveMQ too (``--ems-broker``: the seed's picture).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from gvnfm.store.sql import open_store
from gvnfm.transport import Transport, open_transport
from gvnfm.transport.stomp import StompTransport
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings
from tests.integration.test_ems_amqp import ReferenceVnfm, b64, ems_args, ems_process, write_properties
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq


def ems_properties(path: Path, url: str, *, hostname: str, type_: str) -> Path:
    """The reference EMS keys for ``url``; STOMP selected the reference way (``broker_port`` 61613) or
    with the gvnfm ``protocol`` key (ActiveMQ's 61614)."""
    parts = urlsplit(url)
    extra: dict[str, str] = {}
    vhost = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if vhost:
        extra["virtual_host"] = vhost
    if parts.scheme == "stomp" and parts.port != 61613:
        extra["protocol"] = "stomp"
    return write_properties(path, url_host=parts.hostname or "127.0.0.1", port=parts.port or 5672,
                            user=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
                            hostname=hostname, type_=type_, extra=extra)


async def test_the_reference_vnfm_over_amqp_drives_an_ems_over_stomp(amqp_vhost: str, stomp_vhost: str,
                                                                     tmp_path: Path) -> None:
    type_, hostname = unique("stompems"), unique("host")
    config = ems_properties(tmp_path / "ems.properties", stomp_vhost, hostname=hostname, type_=type_)
    assert "broker_port=61613" in config.read_text() and "protocol" not in config.read_text()
    vnfm = ReferenceVnfm(amqp_vhost, type_)
    await vnfm.connect()
    log_file = tmp_path / "ems.out"
    try:
        async with ems_process(ems_args(tmp_path, config), log_file) as proc:
            assert await vnfm.registration() == {"hostname": hostname}   # text/plain, checked by registration()
            reply = await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64("echo hello-over-$1\n"),
                                               "name": "hi.sh", "script-path": "/opt/openbaton/scripts"}, cid="c1")
            assert reply == {"output": "['hi.sh']", "err": "", "status": 0}
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "hi.sh stomp"}, cid="c3")
            assert reply == {"output": "hello-over-stomp\n", "err": "", "status": 0}
            reply = await vnfm.call(hostname, b"this is not json", cid="c2")     # direct reply-to, from STOMP
            assert reply["status"] != 0 and "not JSON" in reply["err"]
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await vnfm.close()
    text = log_file.read_text()
    assert "stomp://" in text and "guest:***@" in text and "guest:guest" not in text


@pytest.fixture
async def vnfm_factory(tmp_path: Path) -> AsyncIterator[object]:
    started: list[tuple[VnfmService, list[Transport]]] = []

    async def start(nfvo_url: str, ems_url: str) -> VnfmService:
        settings = VnfmSettings(state_dir=tmp_path / "vnfm", register_with_nfvo=False, endpoint=unique("ep"),
                                type=unique("t"), ems_command_timeout=30)
        settings.state_dir.mkdir(exist_ok=True)
        transports = [open_transport(nfvo_url), open_transport(ems_url)]
        for t in transports:
            await t.connect()
        store = await open_store(None, settings.state_dir)
        service = VnfmService(settings, transport=transports[0], store=store, ems_transport=transports[1])
        await service.start()
        started.append((service, transports))
        return service

    yield start
    for service, transports in started:
        await service.stop(grace=5)
        for t in transports:
            await t.close()
        await service.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["amqp-vnfm/stomp-ems", "stomp-vnfm/amqp-ems",
                                  pytest.param("amqp-nfvo/activemq-ems", marks=pytest.mark.activemq)])
async def test_the_vnfm_and_its_emss_on_different_protocols(case: str, request: pytest.FixtureRequest,
                                                            vnfm_factory: object, tmp_path: Path) -> None:
    amqp, stomp = request.getfixturevalue("amqp_vhost"), request.getfixturevalue("stomp_vhost")
    if case == "amqp-vnfm/stomp-ems":
        nfvo_url, vnfm_ems_url, ems_url = amqp, amqp, stomp
    elif case == "stomp-vnfm/amqp-ems":
        nfvo_url, vnfm_ems_url, ems_url = stomp, stomp, amqp
    else:
        activemq = request.getfixturevalue("activemq_url")
        nfvo_url, vnfm_ems_url, ems_url = amqp, activemq, activemq
    service: VnfmService = await vnfm_factory(nfvo_url, vnfm_ems_url)  # type: ignore[operator]
    assert isinstance(service.ems_transport, StompTransport) == vnfm_ems_url.startswith("stomp")
    hosts = [unique("vm") for _ in range(2)]
    procs = []
    async with contextlib.AsyncExitStack() as stack:
        for i, hostname in enumerate(hosts):
            root = tmp_path / f"ems{i}"
            root.mkdir()
            config = ems_properties(root / "ems.properties", ems_url, hostname=hostname,
                                    type_=service.settings.endpoint)
            procs.append(await stack.enter_async_context(ems_process(ems_args(root, config), root / "ems.out")))
        missing = await service.registrations.wait(hosts, 60)
        assert not missing, (tmp_path / "ems0" / "ems.out").read_text()[-3000:]
        replies = await asyncio.gather(*(
            service.ems_client.send(h, {"action": "SAVE_SCRIPTS", "payload": b64("echo hi\n"), "name": "hi.sh",
                                        "script-path": "/opt/openbaton/scripts"}, correlation_id=unique("cid"))
            for h in hosts))
        assert [r.status for r in replies] == [0, 0], (replies, [(tmp_path / f"ems{i}" / "ems.out").read_text()[-2500:]
                                                                 for i in range(2)])
        reply = await service.ems_client.send(hosts[0], {"action": "EXECUTE", "payload": "hi.sh"},
                                              correlation_id=unique("cid"))
        assert (reply.status, reply.output) == (0, "hi\n"), reply
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 15) == 0
