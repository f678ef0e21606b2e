"""Where the real services of the test suite are, and whether they answer.

RabbitMQ (with its STOMP plugin), ActiveMQ (STOMP on 61614) and PostgreSQL run at 127.0.0.1
(``scripts/ensure-services.sh`` installs and starts them when they are absent). Override with
GVNFM_TEST_AMQP / GVNFM_TEST_PG / GVNFM_TEST_ACTIVEMQ / GVNFM_TEST_RABBIT_STOMP_PORT.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

AMQP_URL = os.environ.get("GVNFM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("GVNFM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
#: RabbitMQ's STOMP plugin (the virtual host is appended per test) and ActiveMQ's STOMP connector.
RABBIT_STOMP_PORT = int(os.environ.get("GVNFM_TEST_RABBIT_STOMP_PORT", "61613"))
ACTIVEMQ_STOMP_URL = os.environ.get("GVNFM_TEST_ACTIVEMQ", "stomp://admin:admin@127.0.0.1:61614/")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unique(prefix: str) -> str:
    """A name no other test (or concurrent test run) uses: queues, endpoints, databases."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def amqp_to_stomp(amqp_url: str, port: int) -> str:
    """The same credentials and virtual host, over STOMP on ``port``."""
    parts = urlsplit(amqp_url)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@{parts.hostname}:{port}"
    return urlunsplit(("stomp", netloc, parts.path, "", ""))
