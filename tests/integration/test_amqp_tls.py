"""``amqps://``: a certificate problem is refused at once, not retried until ``connect_timeout``.

The peer is a real TLS endpoint (OpenSSL on both sides, ``asyncio.start_server`` with the test PKI's
server certificate for 127.0.0.1, tests/support/tls.py) that speaks no AMQP: every case here is decided
by the TLS handshake, before the first AMQP byte. aiormq reports a failed verification as a connection
error, which the transport retries; a certificate cannot get better by waiting, so it is now a
:class:`ConnectRefused` naming OpenSSL's reason (the STOMP transport does the same:
tests/integration/test_stomp_tls.py, against a real broker). A handshake that passes and a peer that
then closes is still retried, as a broker restarting."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

import pytest

from gvnfm.transport import TransportError
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.transport.lifecycle import ConnectRefused
from tests.support.tls import Pki, amqps_refused

PASSWORD = "amqps-Secret-5521"


@pytest.fixture(scope="module")
def pki(module_pki: Pki) -> Pki:
    return module_pki


@pytest.fixture
async def tls_port(pki: Pki) -> AsyncIterator[int]:
    """A TLS endpoint on 127.0.0.1 with the test CA's server certificate; it closes every connection
    after the handshake (no AMQP)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    handshakes = 0

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal handshakes
        handshakes += 1
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_broker_certificate_no_trusted_ca_signed_is_refused_at_once(tls_port: int) -> None:
    refused = await amqps_refused(f"amqps://gvnfm:{PASSWORD}@127.0.0.1:{tls_port}/", PASSWORD)
    assert "certificate verify failed" in str(refused) and "cafile" in str(refused)


async def test_a_broker_certificate_another_ca_signed_is_refused_at_once(tls_port: int, pki: Pki) -> None:
    url = f"amqps://gvnfm:{PASSWORD}@127.0.0.1:{tls_port}/?cafile={pki.other_ca}"
    refused = await amqps_refused(url, PASSWORD)
    assert "certificate verify failed" in str(refused)


async def test_a_name_the_certificate_does_not_hold_is_refused_at_once(pki: Pki) -> None:
    """The certificate names 127.0.0.1 and localhost: 127.0.0.2 (the same loopback) is another host."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.2", 0, ssl=context)
    try:
        port = server.sockets[0].getsockname()[1]
        refused = await amqps_refused(f"amqps://gvnfm:{PASSWORD}@127.0.0.2:{port}/?cafile={pki.ca}", PASSWORD)
    finally:
        server.close()
        await server.wait_closed()
    assert "mismatch" in str(refused).lower() or "certificate verify failed" in str(refused)


async def test_a_verified_broker_that_closes_is_retried_as_before(tls_port: int, pki: Pki) -> None:
    """With the right CA the handshake passes; the peer then closes, as a broker restarting would:
    retried until ``connect_timeout``, then a TransportError that is not a refusal."""
    transport = AmqpTransport(f"amqps://gvnfm:{PASSWORD}@127.0.0.1:{tls_port}/?cafile={pki.ca}",
                              connect_timeout=1.5, reconnect_initial=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.connect()
    finally:
        await transport.close()
    assert not isinstance(caught.value, ConnectRefused), caught.value
    assert time.monotonic() - started >= 1.0, "it was not retried"
    assert PASSWORD not in str(caught.value)
