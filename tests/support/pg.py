"""Throw-away PostgreSQL databases for tests (one per module or test, force-dropped after)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.services import unique


def _pg_admin_dsn(pg_url: str) -> str:
    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_pg_database(pg_url: str) -> str:
    """A new empty database on the server of ``pg_url``; returns its SQLAlchemy URL."""
    name = unique("gvnfm_test").replace("-", "_")

    async def run() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(pg_url), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(pg_url: str, db_url: str) -> None:
    name = make_url(db_url).database

    async def run() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(pg_url), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def temporary_pg_database(pg_url: str) -> Iterator[str]:
    """A new empty database (its SQLAlchemy URL) for the ``with`` block, force-dropped after."""
    url = create_pg_database(pg_url)
    try:
        yield url
    finally:
        drop_pg_database(pg_url, url)
