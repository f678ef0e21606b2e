"""STOMP over TLS (``stomp+ssl://``) against a real broker: a private ActiveMQ with ``stomp+ssl``
connectors and a PKI of this module's own (``PrivateActiveMQ(tls=True)``, tests/support/tls.py), one
broker for the module. With the test CA as ``cafile`` everything works (also by the name
``localhost``, and with a client certificate where the broker requires one); without it, with another
CA, or at an address the certificate does not name, ``connect()`` fails at once (not retried until
``connect_timeout``) with a ``ConnectRefused`` naming OpenSSL's reason, and the password is in neither
the error nor the log. The URL's parsing errors are unit tests (tests/unit/test_stomp_tls_urls.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from gvnfm.transport import tls as tls_files
from gvnfm.transport.lifecycle import ConnectRefused
from gvnfm.transport.stomp import StompTransport
from gvnfm.transport.stomp_destinations import Dialect
from tests.support.activemq import PrivateActiveMQ, activemq_installed
from tests.support.services import unique
from tests.support.tls import Pki, tls_tools_installed
from tests.support.transports import assert_rpc_echoes, collector

pytestmark = pytest.mark.activemq

PASSWORD = "tls-Secret-7319"
#: far above what a refusal may take: a failure within FAST was not retried until the deadline
CONNECT_TIMEOUT = 30.0
FAST = 5.0


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateActiveMQ]:
    if not activemq_installed():
        pytest.fail("ActiveMQ is not installed (run scripts/ensure-services.sh)")
    if not tls_tools_installed():
        pytest.fail("openssl and keytool are needed for the test PKI (packages openssl, default-jre-headless)")
    amq = PrivateActiveMQ(tls=True)
    try:
        amq.start()
        yield amq
    finally:
        amq.cleanup()


@pytest.fixture
def pki(broker: PrivateActiveMQ) -> Pki:
    assert broker.pki is not None
    return broker.pki


@pytest.fixture
async def opened() -> AsyncIterator[list[StompTransport]]:
    transports: list[StompTransport] = []
    yield transports
    for t in transports:
        await t.close()


async def _connect(url: str, opened: list[StompTransport]) -> StompTransport:
    t = StompTransport(url, connect_timeout=CONNECT_TIMEOUT)
    opened.append(t)
    await t.connect()
    return t


async def _refused(url: str, caplog: pytest.LogCaptureFixture, why: str = "certificate verify failed") -> str:
    """Connect to ``url``: the ConnectRefused text, checked to say ``why``, to be quick and to be without
    the password (nor is the password in the log)."""
    caplog.set_level(logging.DEBUG)
    t = StompTransport(url, connect_timeout=CONNECT_TIMEOUT)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectRefused) as info:
            await t.connect()
    finally:
        await t.close()
    elapsed = time.monotonic() - started
    text = str(info.value)
    assert elapsed < FAST, f"took {elapsed:.1f} s: {text}"
    assert why in text
    assert PASSWORD not in text and PASSWORD not in caplog.text
    assert "admin:***@" in text
    return text


async def test_with_the_test_ca_everything_works_over_tls(broker: PrivateActiveMQ, pki: Pki,
                                                          opened: list[StompTransport],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = broker.tls_url(password=PASSWORD, cafile=pki.ca)
    server, client = await _connect(url, opened), await _connect(url, opened)
    assert server.dialect is Dialect.ACTIVEMQ and server.connected

    queue, (got, collect) = unique("tls-q"), collector()
    await server.declare_queue(queue, durable=True)
    await server.consume(queue, collect)
    await client.publish(queue, b"over TLS")
    async with asyncio.timeout(10):
        assert await got.get() == b"over TLS"

    await assert_rpc_echoes(server, client, correlation_id="tls-1")
    assert PASSWORD not in caplog.text


async def test_localhost_is_a_name_of_the_certificate(broker: PrivateActiveMQ, pki: Pki,
                                                      opened: list[StompTransport]) -> None:
    t = await _connect(broker.tls_url(host="localhost", cafile=pki.ca), opened)
    queue = unique("tls-localhost")
    await t.declare_queue(queue, auto_delete=True)
    await t.publish(queue, b"x", exchange="")


async def test_without_cafile_the_system_cas_refuse_the_test_ca_at_once(
        broker: PrivateActiveMQ, caplog: pytest.LogCaptureFixture) -> None:
    text = await _refused(broker.tls_url(password=PASSWORD), caplog)
    assert "the system's CAs" in text and "?cafile=" in text


async def test_another_ca_refuses_the_certificate_at_once(broker: PrivateActiveMQ, pki: Pki,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    text = await _refused(broker.tls_url(password=PASSWORD, cafile=pki.other_ca), caplog)
    assert str(pki.other_ca) in text


async def test_an_address_the_certificate_does_not_name_is_refused_at_once(
        broker: PrivateActiveMQ, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    # the same certificate (127.0.0.1, localhost) served on 127.0.0.2, with the right CA
    text = await _refused(broker.tls_url(broker.tls_alias_port, host="127.0.0.2", password=PASSWORD,
                                         cafile=pki.ca), caplog)
    assert "IP address mismatch" in text and "127.0.0.2" in text


async def test_a_client_certificate_where_the_broker_requires_one(broker: PrivateActiveMQ, pki: Pki,
                                                                  opened: list[StompTransport],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    port = broker.tls_client_auth_port
    t = await _connect(broker.tls_url(port, cafile=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key),
                       opened)
    queue = unique("tls-client-cert")
    await t.declare_queue(queue, auto_delete=True)
    await t.publish(queue, b"x", exchange="")

    # Without one: TLS 1.3's handshake ends before the broker checks it, its refusal is an alert after.
    text = await _refused(broker.tls_url(port, password=PASSWORD, cafile=pki.ca), caplog,
                          "the broker refused this client's TLS certificate")
    assert "given: none" in text
    text = await _refused(broker.tls_url(port, password=PASSWORD, cafile=pki.ca, certfile=pki.server_cert,
                                         keyfile=broker.dir / "tls" / "server.key"), caplog,
                          "the broker refused this client's TLS certificate")   # not a client certificate
    assert "given: certfile" in text


async def test_a_refused_client_certificate_is_read_from_the_connection_itself(
        broker: PrivateActiveMQ, pki: Pki, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's alert on the connection that was refused is its reason: on a loaded machine the
    alert may come later than a second handshake listens (CI saw 25.7 s of retries), so that handshake
    here sees nothing, and the refusal is still at once."""
    asked: list[str] = []

    def sees_nothing(host: str, *args: object, **kwargs: object) -> None:
        asked.append(host)

    monkeypatch.setattr(tls_files, "handshake_failure", sees_nothing)
    text = await _refused(broker.tls_url(broker.tls_client_auth_port, password=PASSWORD, cafile=pki.ca), caplog,
                          "the broker refused this client's TLS certificate")
    assert "given: none" in text and asked == []


async def test_a_broker_restart_is_seen_over_tls_and_the_transport_comes_back(
        broker: PrivateActiveMQ, pki: Pki, opened: list[StompTransport]) -> None:
    """stomp.py 9.0 alone would spin on the closed TLS socket and never report it (a core at 100 %)."""
    t = StompTransport(broker.tls_url(cafile=pki.ca), connect_timeout=CONNECT_TIMEOUT, reconnect_initial=0.2,
                       reconnect_max=1.0)
    opened.append(t)
    await t.connect()
    queue, (got, collect) = unique("tls-restart"), collector()
    await t.declare_queue(queue, durable=True)
    await t.consume(queue, collect)
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    t.on_reconnect(on_reconnect)
    await asyncio.to_thread(broker.stop)
    cpu, started = time.process_time(), time.monotonic()
    async with asyncio.timeout(FAST):
        while t.connected:
            await asyncio.sleep(0.02)
    assert time.process_time() - cpu < 0.5 * (time.monotonic() - started) + 0.3   # no spinning reader
    await asyncio.to_thread(broker.start)
    async with asyncio.timeout(60):
        await reconnected.wait()
    await t.publish(queue, b"after the restart")
    async with asyncio.timeout(10):
        assert await got.get() == b"after the restart"
