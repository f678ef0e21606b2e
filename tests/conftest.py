from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.pg import temporary_pg_database
from tests.support.rabbit import private_rabbit  # noqa: F401  (a fixture for every test module)
from tests.support.services import (
    ACTIVEMQ_STOMP_URL,
    AMQP_URL,
    PG_URL,
    RABBIT_STOMP_PORT,
    amqp_to_stomp,
    port_open,
    unique,
)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """A real RabbitMQ. Its absence is a failure, not a skip: CI installs it."""
    if not port_open("127.0.0.1", 5672):
        pytest.fail("RabbitMQ is not running at 127.0.0.1:5672 (run scripts/ensure-services.sh)")
    return AMQP_URL


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A real PostgreSQL (trust auth). Its absence is a failure, not a skip: CI installs it."""
    if not port_open("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not running at 127.0.0.1:5432 (run scripts/ensure-services.sh)")
    return PG_URL


@pytest.fixture
def amqp_vhost(amqp_url: str) -> Iterator[str]:
    """A broker URL on a virtual host of this test's own: tests that play the NFVO (and so consume
    the NFVO's fixed queue names) cannot steal each other's messages."""
    vhost = unique("gvnfm-test")
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True, timeout=60)
    base = amqp_url.rstrip("/")
    try:
        yield f"{base}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.fixture
def stomp_vhost(amqp_vhost: str) -> str:
    """``stomp://`` on RabbitMQ's STOMP plugin, on the virtual host of ``amqp_vhost`` (the same broker
    and queues as that AMQP URL: STOMP picks the virtual host with the ``host`` header of CONNECT).

    STOMP cannot declare an exchange: the topic exchange is declared over AMQP first, as the NFVO
    does on a real deployment."""
    if not port_open("127.0.0.1", RABBIT_STOMP_PORT):
        pytest.fail(f"RabbitMQ's STOMP plugin is not listening on {RABBIT_STOMP_PORT} (run scripts/ensure-services.sh)")
    declare_exchange(amqp_vhost)
    return amqp_to_stomp(amqp_vhost, RABBIT_STOMP_PORT)


def declare_exchange(amqp_url: str) -> None:
    """The topic exchange, declared as the NFVO (and the AMQP transport) declares it (on a thread of
    its own: fixtures that need it may run inside the test's event loop)."""
    import asyncio
    import concurrent.futures

    from gvnfm.transport.amqp import AmqpTransport

    async def declare() -> None:
        async with AmqpTransport(amqp_url, connect_timeout=10):
            pass

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, declare()).result(timeout=60)


@pytest.fixture(scope="session")
def activemq_url() -> str:
    """A real ActiveMQ (STOMP). Its absence is a failure, not a skip: CI installs it."""
    from urllib.parse import urlsplit

    parts = urlsplit(ACTIVEMQ_STOMP_URL)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 61613):
        pytest.fail(f"ActiveMQ is not listening at {parts.hostname}:{parts.port} (run scripts/ensure-services.sh)")
    return ACTIVEMQ_STOMP_URL


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    with temporary_pg_database(pg_url) as url:
        yield url
