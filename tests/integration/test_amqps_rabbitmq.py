"""``amqps://`` against a real RabbitMQ: a private node with an AMQPS listener and the test PKI's server
certificate (``PrivateRabbit(tls=...)``, tests/support/rabbit.py and tls.py), one node for the module.

What tests/integration/test_amqp_tls.py proves against a bare TLS endpoint (a certificate problem is
refused at once), this proves against the broker itself, and with the AMQP that follows the handshake:
with the test CA the transport publishes, consumes, answers and asks over TLS (RabbitMQ says the
connection is TLS, and a plain-AMQP client of the same node sees the same queues); a certificate the
broker refuses, or a CA that did not sign the broker's, is refused at once; and an EMS configured as on
a VM with a TLS broker (``protocol=amqps``, ``broker_cafile``: what the user-data of a TLS EMS broker
writes) registers and runs a script for a VNFM that speaks plain AMQP to the same node, as the reference
VNFM would."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from gvnfm.transport.amqp import AmqpTransport
from tests.integration.test_ems_amqp import ReferenceVnfm, b64, ems_args, ems_process, write_properties
from tests.support.rabbit import PrivateRabbit, rabbit_sbin
from tests.support.services import unique
from tests.support.tls import CONNECT_TIMEOUT, Pki, amqps_refused
from tests.support.transports import assert_rpc_echoes, collector

pytestmark = pytest.mark.rabbitmq

PASSWORD = "amqps-Secret-6170"


@pytest.fixture(scope="module")
def pki(module_pki: Pki) -> Pki:
    return module_pki


@pytest.fixture(scope="module")
def tls_rabbit(pki: Pki) -> Iterator[PrivateRabbit]:
    if rabbit_sbin() is None:
        pytest.fail("rabbitmq-server is not installed (run scripts/ensure-services.sh)")
    node = PrivateRabbit(tls=pki)
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


def _tls_connections(node: PrivateRabbit) -> list[bool]:
    """RabbitMQ's own word: for each client connection, whether it is TLS."""
    out = node.ctl("list_connections", "ssl", "--quiet", "--no-table-headers").stdout
    return [line.strip() == "true" for line in out.splitlines() if line.strip()]


async def test_with_the_test_ca_the_transport_works_over_tls(tls_rabbit: PrivateRabbit, pki: Pki) -> None:
    server = AmqpTransport(tls_rabbit.amqps_url(cafile=pki.ca), connect_timeout=CONNECT_TIMEOUT)
    client = AmqpTransport(tls_rabbit.amqps_url(host="localhost", cafile=pki.ca), connect_timeout=CONNECT_TIMEOUT)
    plain = await aio_pika.connect(tls_rabbit.url)
    try:
        await server.connect()
        await client.connect()
        assert _tls_connections(tls_rabbit).count(True) == 2 and False in _tls_connections(tls_rabbit)

        queue, (got, collect) = unique("amqps-q"), collector()
        await server.declare_queue(queue, auto_delete=True)
        await server.consume(queue, collect)
        await client.publish(queue, b"over TLS", exchange="")
        async with asyncio.timeout(10):
            assert await got.get() == b"over TLS"

        # the same broker: what plain AMQP publishes to the queue reaches the TLS consumer
        channel = await plain.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"from plain AMQP"), routing_key=queue)
        async with asyncio.timeout(10):
            assert await got.get() == b"from plain AMQP"

        await assert_rpc_echoes(server, client, correlation_id="amqps-1", exchange="")
    finally:
        await plain.close()
        await client.close()
        await server.close()


@pytest.mark.parametrize("ca", ["other_ca", None])
async def test_a_ca_that_did_not_sign_the_broker_is_refused_at_once(tls_rabbit: PrivateRabbit, pki: Pki,
                                                                   ca: str | None) -> None:
    cafile = getattr(pki, ca) if ca else None
    refused = await amqps_refused(tls_rabbit.amqps_url(cafile=cafile, password=PASSWORD), PASSWORD)
    assert "certificate verify failed" in str(refused)


async def test_a_vm_ems_with_a_tls_broker_registers_and_runs_scripts(tls_rabbit: PrivateRabbit, pki: Pki,
                                                                     tmp_path: Path) -> None:
    """The EMS as the user-data of a TLS EMS broker configures it (``protocol=amqps``, ``broker_cafile``,
    the broker's address and AMQPS port); the VNFM side is the reference's, on plain AMQP."""
    type_, hostname = unique("amqps"), unique("vm") + "-1"
    user, password = unique("ems"), "Tls-Ems-Secret-4471"
    await asyncio.to_thread(tls_rabbit.add_user, user, password)
    config = write_properties(tmp_path / "ems.properties", url_host="127.0.0.1", port=tls_rabbit.tls_port or 0,
                              user=user, password=password, hostname=hostname, type_=type_,
                              extra={"protocol": "amqps", "broker_cafile": str(pki.ca)})
    vnfm = ReferenceVnfm(tls_rabbit.url, type_)
    await vnfm.connect()
    log_file = tmp_path / "ems.out"
    try:
        async with ems_process(ems_args(tmp_path, config), log_file) as proc:
            assert await vnfm.registration() == {"hostname": hostname}
            assert True in _tls_connections(tls_rabbit)
            reply = await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64('echo "tls $1"\n'),
                                               "name": "install.sh", "script-path": "/opt/openbaton/scripts"},
                                    cid="t1")
            assert reply["status"] == 0, reply
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "install.sh ok"}, cid="t2")
            assert reply == {"output": "tls ok\n", "err": "", "status": 0}
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await vnfm.close()
    text = log_file.read_text() + (tmp_path / "log" / "ems-receiver.log").read_text()
    assert "event=ems_registered" in text and "amqps://" in text
    assert password not in text


@pytest.fixture(scope="module")
def client_cert_rabbit(pki: Pki) -> Iterator[PrivateRabbit]:
    """A node whose AMQPS listener requires a client certificate the test CA signed."""
    node = PrivateRabbit(tls=pki, require_client_certificate=True)
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


async def test_a_client_certificate_where_the_broker_requires_one(client_cert_rabbit: PrivateRabbit,
                                                                  pki: Pki) -> None:
    node = client_cert_rabbit
    transport = AmqpTransport(node.amqps_url(cafile=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key),
                              connect_timeout=CONNECT_TIMEOUT)
    try:
        await transport.connect()
        queue = unique("amqps-client-cert")
        await transport.declare_queue(queue, auto_delete=True)
        await transport.publish(queue, b"x", exchange="")
    finally:
        await transport.close()

    # without one: TLS 1.3's handshake ends before the broker checks it, its refusal is an alert after
    assert "refused this client's TLS certificate" in str(await amqps_refused(
        node.amqps_url(cafile=pki.ca, password=PASSWORD), PASSWORD))
