"""Every log an end-to-end test produces is searched for the passwords the test used: the broker URL
of ``gvnfm up`` and the EMS credentials must never appear in a log, a report, printed output or the
control API's file (only the hosts' EMS properties, 0600, hold them, as the user-data writes them)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import unique

#: Passwords the running test used (filled by the fixtures below and by ``remember_secret``).
SECRETS: list[str] = []
#: Files that hold credentials by design (the EMS configuration the user-data writes, 0600).
HOLDERS = ("openbaton-ems.properties",)


def remember_secret(secret: str) -> str:
    SECRETS.append(secret)
    return secret


def files_with_secrets(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.name in HOLDERS:
            continue
        data = path.read_bytes()
        found += [f"{path} holds {s!r}" for s in secrets if s.encode() in data]
    return found


@pytest.fixture(autouse=True)
def no_password_in_any_log(tmp_path: Path) -> Iterator[None]:
    SECRETS.clear()
    yield
    assert files_with_secrets(tmp_path, SECRETS) == []


@pytest.fixture
def secret_broker(amqp_vhost: str) -> Iterator[str]:
    """``amqp_vhost`` with a broker user of the test's own whose password is distinctive, so that the
    search for it in the logs means something (guest/guest would match the user name)."""
    user, password = unique("gvnfm-e2e"), remember_secret(unique("pw-e2e"))
    vhost = amqp_vhost.rsplit("/", 1)[1]
    subprocess.run(["rabbitmqctl", "-q", "add_user", user, password], check=True, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_user_tags", user, "administrator"], check=True, capture_output=True,
                   timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True,
                   capture_output=True, timeout=60)
    try:
        yield f"amqp://{user}:{password}@{amqp_vhost.split('@', 1)[1]}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)
