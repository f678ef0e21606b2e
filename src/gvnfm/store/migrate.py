"""Schema migrations (alembic, shipped in the package) run programmatically, and ``gvnfm db upgrade``.

Migrations run in one transaction that first takes a lock, so several processes opening the same
database at once migrate it once: ``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` (the
writer engine) on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import typer
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gvnfm.store.engine import make_engine, normalise_url, writer

log = logging.getLogger("gvnfm.store")

VERSION_TABLE = "gvnfm_alembic_version"
_PG_LOCK_KEY = 0x67766E666D   # "gvnfm"
_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config(str(_INI))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def lock_for_migrations(connection: Connection) -> None:
    """Serialise migrations across processes (called inside the migration transaction)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    # SQLite: the transaction began with BEGIN IMMEDIATE (writer engine) and holds the write lock.


def _upgrade_on(connection: Connection, revision: str) -> str | None:
    lock_for_migrations(connection)
    before = current_revision(connection)
    command.upgrade(alembic_config(connection), revision)
    after = current_revision(connection)
    if before != after:
        log.info("event=db_migrated from=%s to=%s dialect=%s", before, after, connection.dialect.name)
    return after


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Migrate the database of ``engine`` to ``revision``; returns the revision it is at."""
    async with writer(engine).begin() as conn:
        return await conn.run_sync(_upgrade_on, revision)


async def upgrade_async(url: str, revision: str = "head") -> str | None:
    engine = make_engine(url)
    try:
        return await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the latest schema (sync; not from inside a running loop)."""
    asyncio.run(upgrade_async(url))


def default_url(state_dir: Path) -> str:
    """The VNFM's default database: SQLite in its state directory."""
    return f"sqlite+aiosqlite:///{(state_dir / 'gvnfm.db').resolve()}"


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group (``gvnfm db upgrade --db URL``) to the gvnfm CLI."""
    db_app = typer.Typer(name="db", help="The gvnfm database (operations, VNFRs, script results).",
                         no_args_is_help=True, add_completion=False)

    @db_app.command("upgrade")
    def upgrade_cmd(
        db: str | None = typer.Option(None, "--db", envvar="GVNFM_DB",
                                      help="SQLAlchemy URL (default: SQLite in the state dir)"),
        state_dir: Path | None = typer.Option(None, "--state-dir", help="state dir of the default SQLite database"),
    ) -> None:
        """Create or migrate the database schema to the latest revision."""
        url = db or default_url(state_dir or Path(os.environ.get("GVNFM_STATE_DIR", ".gvnfm")))
        try:
            shown = normalise_url(url).render_as_string(hide_password=True)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            revision = asyncio.run(upgrade_async(url))
        except Exception as exc:
            typer.echo(f"error: could not upgrade {shown}: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"database {shown} is at revision {revision}")

    app.add_typer(db_app, name="db")
