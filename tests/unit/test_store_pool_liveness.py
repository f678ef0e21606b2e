"""The PostgreSQL pool's check at checkout (``store.engine._check_liveness``), without a server: a closed
connection is replaced without a round trip, an idle one is pinged first, a busy one is handed out as it is."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.exc import DisconnectionError

from gvnfm.store import engine


class Driver:
    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


class Adapter:
    """What SQLAlchemy hands the checkout event: the adapted DBAPI connection."""

    def __init__(self, *, closed: bool = False, answers: bool = True) -> None:
        self.driver_connection = Driver(closed)
        self.answers = answers
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if not self.answers:
            raise ConnectionError("no answer")


class Record:
    def __init__(self, idle_for: float | None) -> None:
        self.info: dict[str, Any] = {}
        if idle_for is not None:
            self.info[engine._IDLE_SINCE] = time.monotonic() - idle_for


def test_a_connection_the_server_closed_is_replaced_without_a_ping() -> None:
    conn = Adapter(closed=True)
    with pytest.raises(DisconnectionError):
        engine._check_liveness(conn, Record(idle_for=0.0), None)
    assert conn.pings == 0


def test_a_busy_connection_is_handed_out_without_a_ping() -> None:
    conn = Adapter()
    engine._check_liveness(conn, Record(idle_for=engine.IDLE_PING_SECONDS / 10), None)
    engine._check_liveness(conn, Record(idle_for=None), None)          # a new connection, never checked in
    assert conn.pings == 0


def test_an_idle_connection_is_pinged_and_replaced_if_it_does_not_answer() -> None:
    alive = Adapter()
    engine._check_liveness(alive, Record(idle_for=engine.IDLE_PING_SECONDS + 1), None)
    assert alive.pings == 1
    dead = Adapter(answers=False)
    with pytest.raises(DisconnectionError, match="did not answer a ping"):
        engine._check_liveness(dead, Record(idle_for=engine.IDLE_PING_SECONDS + 1), None)


def test_a_returned_connection_counts_as_idle_from_its_return() -> None:
    record = Record(idle_for=None)
    engine._idle_from_now(Adapter(), record)
    assert time.monotonic() - record.info[engine._IDLE_SINCE] < 1.0
