from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.broker_admin import BrokerAdmin, broker_admin
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
from tests.support.tls import module_pki  # noqa: F401  (a fixture for every test module)


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
    the NFVO's fixed queue names) cannot steal each other's messages. Made through the management API
    (any user) or rabbitmqctl (root): see tests/support/broker_admin.py."""
    admin = broker_admin()
    vhost = unique("gvnfm-test")
    admin.add_vhost(vhost)
    try:
        admin.set_permissions(vhost, urlsplit(amqp_url).username or "guest", ".*", ".*", ".*")
        yield f"{amqp_url.rstrip('/')}/{vhost}"
    finally:
        # the VNFM's host users of this vhost (operations a test left unreleased) go with it
        for user in {u for u in admin.vhost_users(vhost) if u.startswith("gvnfm-ems-")}:
            admin.delete_user(user)
        admin.delete_vhost(vhost)


@pytest.fixture
def rabbit_admin(amqp_url: str) -> BrokerAdmin:
    """Adds/deletes virtual hosts, users and permissions on the shared broker (for tests that need a user
    with restricted permissions: delete what you add)."""
    return broker_admin()


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
