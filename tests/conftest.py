from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.pg import temporary_pg_database
from tests.support.rabbit import private_rabbit  # noqa: F401  (a fixture for every test module)
from tests.support.services import AMQP_URL, PG_URL, port_open, unique


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
        # the VNFM's host users of this vhost (operations a test left unreleased) go with it
        listed = subprocess.run(["rabbitmqctl", "-q", "list_permissions", "-p", vhost], capture_output=True,
                                text=True, timeout=60).stdout
        for user in {line.split()[0] for line in listed.splitlines() if line.startswith("gvnfm-ems-")}:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    with temporary_pg_database(pg_url) as url:
        yield url
