"""Database URLs and async engines for the store.

SQLite (``sqlite+aiosqlite``) and PostgreSQL (``postgresql+asyncpg``) only. SQLite connections run in
WAL mode with a busy timeout and SQLAlchemy emits the ``BEGIN`` itself: plain ``BEGIN`` for readers,
``BEGIN IMMEDIATE`` on the engine returned by :func:`writer` so that writers of several processes
queue on the database lock instead of interleaving. A SQLite file also gets a synchronous engine
(:func:`thread_engine`, the standard ``sqlite3`` module, the same settings) on which the store runs its
transactions in threads of its own (``gvnfm.store.transactions``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gvnfm.private import private_file

log = logging.getLogger("gvnfm.store")

SQLITE = "sqlite+aiosqlite"
POSTGRES = "postgresql+asyncpg"
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_POSTGRES_NAMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2",
                   "postgresql+pg8000", "postgres+asyncpg"}
WRITE_OPTION = "gvnfm_write"
DEFAULT_BUSY_TIMEOUT = 30.0


def normalise_url(url: str) -> URL:
    """Parse ``url`` and switch it to the async driver; ValueError for anything else."""
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a database URL: {url!r} (use sqlite+aiosqlite:///PATH or "
                         "postgresql+asyncpg://USER@HOST/DB)") from exc
    name = parsed.drivername.lower()
    if name in _SQLITE_NAMES:
        return parsed.set(drivername=SQLITE)
    if name in _POSTGRES_NAMES:
        return parsed.set(drivername=POSTGRES)
    raise ValueError(f"unsupported database {parsed.drivername!r} in {parsed.render_as_string()!r}: "
                     "gvnfm stores in SQLite (sqlite+aiosqlite:///PATH) or PostgreSQL (postgresql+asyncpg://...)")


def is_memory(url: URL) -> bool:
    return url.drivername == SQLITE and url.database in (None, "", ":memory:")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def make_engine(url: str | URL, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> AsyncEngine:
    """An async engine for ``url`` (normalised first). Creates the parent directory of a SQLite file."""
    parsed = url if isinstance(url, URL) else normalise_url(url)
    if parsed.drivername == SQLITE:
        return _sqlite_engine(parsed, busy_timeout)
    engine = create_async_engine(
        parsed, json_serializer=_dumps, pool_size=5, max_overflow=5, pool_timeout=30,
        connect_args={"timeout": 15, "command_timeout": 120, "server_settings": {"application_name": "gvnfm"}})
    event.listen(engine.sync_engine.pool, "checkin", _idle_from_now)
    event.listen(engine.sync_engine.pool, "checkout", _check_liveness)
    return engine


#: Seconds a pooled PostgreSQL connection may have been idle before its checkout pings the server.
IDLE_PING_SECONDS = 30.0
_IDLE_SINCE = "gvnfm_idle_since"


def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _check_liveness(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Whether a pooled PostgreSQL connection can be handed out; a ``DisconnectionError`` makes the pool
    replace it. ``pool_pre_ping`` paid a BEGIN, a query and a ROLLBACK before every transaction, half of a
    short transaction's round trips (docs/performance.md, fourteenth round). Instead:

    - a connection the server has closed (a restart, ``pg_terminate_backend``) is replaced without a round
      trip: asyncpg knows from its socket, as soon as the event loop has seen it close;
    - a connection idle for more than ``IDLE_PING_SECONDS`` is pinged first, as pre-ping did: one that died
      silently meanwhile (a NAT or firewall that forgot it, a network partition) is replaced, not handed to
      a transaction that would fail on it. Under load, connections are back in use within milliseconds and
      none is pinged."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
    since = record.info.get(_IDLE_SINCE)
    if since is not None and time.monotonic() - since > IDLE_PING_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection idle for {time.monotonic() - since:.0f} s "
                                     f"did not answer a ping: {exc}") from exc


EngineT = TypeVar("EngineT", AsyncEngine, Engine)


def writer(engine: EngineT) -> EngineT:
    """The same engine (same pool) whose transactions are writers (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def thread_engine(url: URL, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """A synchronous engine (``sqlite3``) on the SQLite file of ``url``, with the settings of the async
    one, whose connections may be used by any thread (one at a time: the pool hands each to one user)."""
    sync_url = url.set(drivername="sqlite+pysqlite")
    engine = create_engine(sync_url, json_serializer=_dumps, pool_reset_on_return=None,
                           connect_args={"timeout": busy_timeout, "check_same_thread": False})
    _sqlite_events(engine, memory=False, busy_timeout=busy_timeout)
    return engine


def _sqlite_engine(url: URL, busy_timeout: float) -> AsyncEngine:
    memory = is_memory(url)
    if not memory and url.database and not url.query.get("uri"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        private_file(Path(url.database).expanduser())   # 0600: it holds full requests (SQLite's journals follow)
    # Every use of a connection is a transaction that SQLAlchemy ends (commit or rollback) before the
    # connection goes back to the pool, so the pool's own rollback on return is skipped: one thread
    # hop (aiosqlite) less per transaction.
    engine = create_async_engine(url, json_serializer=_dumps, connect_args={"timeout": busy_timeout},
                                 pool_reset_on_return=None)
    _sqlite_events(engine.sync_engine, memory=memory, busy_timeout=busy_timeout)
    return engine


def _sqlite_events(engine: Engine, *, memory: bool, busy_timeout: float) -> None:
    """Every new connection: busy timeout, foreign keys, WAL (a file); every transaction: our own BEGIN."""
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None          # SQLAlchemy emits BEGIN (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _enable_wal(cur, busy_timeout)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _enable_wal(cur: Any, busy_timeout: float) -> None:
    """Switch to WAL once per database file; a concurrent switch can report 'locked': retry, bounded."""
    cur.execute("PRAGMA journal_mode")
    if str(cur.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            mode = str(cur.fetchone()[0]).lower()
            if mode != "wal":
                log.warning("event=sqlite_journal_mode mode=%s reason=wal_refused", mode)
            return
        except Exception as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
