"""Alembic environment of the gvnfm store.

gvnfm passes an open connection (the sync facade of an async one, inside a transaction that already
holds the migration lock) in ``config.attributes["connection"]``: see ``gvnfm.store.migrate``. From the
alembic CLI the URL comes from ``-x db=URL`` or ``GVNFM_DB``; offline mode (``--sql``) renders SQL only.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from gvnfm.store.engine import make_engine, normalise_url, writer
from gvnfm.store.migrate import VERSION_TABLE, lock_for_migrations
from gvnfm.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("GVNFM_DB")
    if not url:
        raise RuntimeError("no database: pass -x db=URL (or set GVNFM_DB)")
    return url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _locked_run(connection: Connection) -> None:
    lock_for_migrations(connection)
    _run(connection)


async def _run_cli() -> None:
    engine = writer(make_engine(_cli_url()))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_locked_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=normalise_url(_cli_url()), target_metadata=target_metadata, literal_binds=True,
                      version_table=VERSION_TABLE, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    asyncio.run(_run_cli())
