"""PostgreSQL closes the store's pooled connections (a server restart, ``pg_terminate_backend``, an idle
timeout): the store's next transactions get new connections instead of failing on the dead ones. The
engine checks at checkout whether asyncpg has seen the server close the connection (no round trip;
``pool_pre_ping`` paid three round trips before every transaction for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gvnfm.store import engine as engine_module
from gvnfm.store.api import DONE
from gvnfm.store.sql import SqlStore
from tests.support.pg import temporary_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
def db(pg_url: str) -> Iterator[str]:
    with temporary_pg_database(pg_url) as url:
        yield url


async def _terminate_the_stores_connections(db_url: str) -> int:
    """Every server process of ``db_url``'s database but the asking one: the store's pooled connections."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        return len(await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await admin.close()


async def test_transactions_after_the_server_closed_the_pooled_connections_succeed(db: str) -> None:
    store = await SqlStore.open(db)
    try:
        ops = [f"op-{i}" for i in range(6)]
        # several transactions at once: the pool holds more than one connection
        await asyncio.gather(*(store.claim_operation(op, action="INSTANTIATE", vnfr_id="vnfr-1", vnfr_name="v",
                                                     request={"action": "INSTANTIATE"}, worker="w1",
                                                     lease_seconds=30) for op in ops))
        assert await _terminate_the_stores_connections(db) >= 2
        await asyncio.sleep(0.3)    # the server's goodbye reaches the pooled connections' sockets
        await asyncio.gather(*(store.finish_operation(op, state=DONE, reply={"ok": True}, worker="w1")
                               for op in ops))
        for op in ops:
            found = await store.get_operation(op)
            assert found is not None and found.state == DONE
    finally:
        await store.close()


async def test_with_every_connection_pinged_transactions_right_after_the_termination_succeed(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # every returned connection counts as idle, so its checkout pings it; the next transactions start
    # without a pause after the termination (whichever check finds the dead connection first replaces it)
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    store = await SqlStore.open(db)
    try:
        await store.claim_operation("op-1", action="INSTANTIATE", vnfr_id="vnfr-1", vnfr_name="v",
                                    request={"action": "INSTANTIATE"}, worker="w1", lease_seconds=30)
        assert await _terminate_the_stores_connections(db) >= 1
        await store.finish_operation("op-1", state=DONE, reply={"ok": True}, worker="w1")
        found = await store.get_operation("op-1")
        assert found is not None and found.state == DONE
    finally:
        await store.close()
