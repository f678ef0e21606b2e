"""Store fixtures shared by the store's integration tests: every test runs on a SQLite file and on
the real PostgreSQL (a database of its own per module)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gvnfm.store.sql import SqlStore
from tests.support.pg import temporary_pg_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def pg_database(pg_url: str) -> Iterator[str]:
    with temporary_pg_database(pg_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = await SqlStore.open(db_url)
    try:
        yield s
    finally:
        await s.close()
