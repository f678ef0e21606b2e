from __future__ import annotations

import pytest

from tests.support.services import AMQP_URL, PG_URL, port_open


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
