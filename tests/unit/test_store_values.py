"""Store helpers without a database server: URLs, bounded text, keys, JSON cleaning, the in-memory
SQLite store and the ``gvnfm db upgrade`` command."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gvnfm.store.api import DONE, StepResult
from gvnfm.store.engine import normalise_url
from gvnfm.store.migrate import VERSION_TABLE, register
from gvnfm.store.sql import KEY_BYTES, SqlStore, bound_text, clean_json, clean_text, key


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///state/gvnfm.db", "sqlite+aiosqlite:///state/gvnfm.db"),
    ("sqlite:////abs/gvnfm.db", "sqlite+aiosqlite:////abs/gvnfm.db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite://", "sqlite+aiosqlite://"),
    ("postgresql://u:pw@db:5433/gvnfm", "postgresql+asyncpg://u:pw@db:5433/gvnfm"),
    ("postgres://u@db/gvnfm", "postgresql+asyncpg://u@db/gvnfm"),
    ("postgresql+psycopg2://u@db/gvnfm", "postgresql+asyncpg://u@db/gvnfm"),
    ("  postgresql+asyncpg://u@db/gvnfm ", "postgresql+asyncpg://u@db/gvnfm"),
])
def test_urls_are_normalised_to_async_drivers(url: str, expected: str) -> None:
    assert normalise_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "", "oracle+cx_oracle://x"])
def test_other_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError, match=r"(unsupported database|not a database URL)"):
        normalise_url(url)


def test_bound_text_keeps_short_text_and_the_tail_of_long_text() -> None:
    assert bound_text("hello", 300) == "hello"
    assert bound_text(None, 300) == ""
    text = "".join(f"{i}\n" for i in range(100_000))
    out = bound_text(text, 1000)
    marker, _, tail = out.partition("\n")
    assert len(out.encode()) <= 1000 and len(out.encode()) >= 990
    assert marker.startswith("[gvnfm: ") and "truncated" in marker
    assert text.endswith(tail)
    assert int(marker.split()[1]) == len(text) - len(tail)
    exact = "a" * 1000
    assert bound_text(exact, 1000) == exact


@pytest.mark.parametrize("char", ["é", "€", "🚀"])
def test_bound_text_never_splits_a_character(char: str) -> None:
    text = "start" + char * 3000
    out = bound_text(text, 500)
    out.encode("utf-8")                                     # valid UTF-8
    marker, _, tail = out.partition("\n")
    assert len(out.encode()) <= 500 and set(tail) == {char}
    assert int(marker.split()[1]) == len(text.encode()) - len(tail.encode())


def test_clean_text_and_json() -> None:
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("x\ud83dy") == "x?y"                  # a lone surrogate
    assert clean_text("plain ünï 🚀") == "plain ünï 🚀"
    doc = {"a": [1, 2.5, float("nan"), {"b": "\x00"}], 3: (True, None, float("-inf")), "c\x00": "ok"}
    assert clean_json(doc) == {"a": [1, 2.5, None, {"b": "\ufffd"}], "3": [True, None, None], "c\ufffd": "ok"}
    assert clean_json(None) is None


def test_keys_are_identity_up_to_the_limit_then_a_digest() -> None:
    assert key("op-1") == "op-1"
    short = "é" * (KEY_BYTES // 2)
    assert key(short) == short
    long_a, long_b = "x" * 1000 + "a", "x" * 1000 + "b"
    assert len(key(long_a).encode()) <= KEY_BYTES and key(long_a) != key(long_b)
    assert key(long_a) == key(long_a) and key(long_a).startswith("xxxx")
    assert len(key("€" * 500).encode()) <= KEY_BYTES


async def test_in_memory_store_works_with_concurrent_tasks() -> None:
    s = await SqlStore.open("sqlite+aiosqlite://")
    try:
        results = await asyncio.gather(*(s.claim_operation(
            "op", action="START", vnfr_id="v", vnfr_name="n", request={}, worker=f"w{i}", lease_seconds=30)
            for i in range(10)))
        assert sum(owned for _, owned in results) == 1
        await asyncio.gather(*(s.record_step(StepResult("op", f"s{i}", "EXECUTE", "START", 0, "start.sh", f"h{i}",
                                                         "n", 0, "out", "", datetime.now(UTC), 0.1)) for i in range(5)))
        await s.finish_operation("op", state=DONE, reply={"action": "START"})
        assert len(await s.steps("op")) == 5
        assert (await s.get_operation("op")).reply == {"action": "START"}   # type: ignore[union-attr]
    finally:
        await s.close()
        await s.close()                                      # closing twice is fine


def test_max_text_must_leave_room_for_the_marker() -> None:
    async def run() -> None:
        with pytest.raises(ValueError, match="max_text"):
            await SqlStore.open("sqlite+aiosqlite://", max_text=10)

    asyncio.run(run())


def _db_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def test_db_upgrade_command(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "sub" / "cli.db"
    for _ in range(2):                                       # twice: idempotent
        res = runner.invoke(_db_app(), ["db", "upgrade", "--db", f"sqlite:///{db}"])
        assert res.exit_code == 0, res.output
        assert "is at revision 0004" in res.output
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("0004",)]
    assert {"operations", "steps", "vnfrs", "ems_registrations", "vnfm_workers", "nfvo_requests"} <= tables

    res = runner.invoke(_db_app(), ["db", "upgrade", "--state-dir", str(tmp_path / "state")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "state" / "gvnfm.db").exists()


def test_db_upgrade_command_reports_errors() -> None:
    runner = CliRunner()
    res = runner.invoke(_db_app(), ["db", "upgrade", "--db", "mysql://u@h/db"])
    assert res.exit_code == 2 and "unsupported database" in res.output
    res = runner.invoke(_db_app(), ["db", "upgrade", "--db", "postgresql://nobody:secret@127.0.0.1:1/none"])
    assert res.exit_code == 1 and "could not upgrade" in res.output
    assert "secret" not in res.output                        # the password is masked
