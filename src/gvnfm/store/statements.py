"""The store's frequent statements, built once per dialect, with bind parameters for every value.

A statement built per call carries fresh bind parameters whose types SQLAlchemy keys anew on every
execution; one built once is keyed once and its compiled form reused. Measured on one
``set_context`` transaction (SQLite, synchronous): 300 µs built per call, 140 µs built once, 55 µs for
the ``BEGIN IMMEDIATE`` and the commit alone (docs/performance.md, seventh round). The values are
cleaned by the caller (``gvnfm.store.sql``); here are only the shapes. A bind parameter of an
``UPDATE`` is never named like a column (SQLAlchemy reserves those names).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Update

from gvnfm.store.api import RUNNING
from gvnfm.store.tables import ems_registrations, nfvo_requests, operations, steps, vnfm_workers, vnfrs

#: the columns of a step result besides its key
STEP_COLUMNS = ("action", "event", "script_index", "script", "hostname", "vnfr_name", "status", "output", "error",
                "started_at", "duration")
#: the columns an operation update may set from a value (``vnfr_id``/``vnfr_name`` are filled in, never replaced)
_SETTABLE = ("state", "reply", "error", "lease_until", "replied", "context")
_FILLED = ("vnfr_id", "vnfr_name")


class Statements:
    """Every statement of the hot paths, for one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str) -> None:
        self.insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.upsert_steps = self.upsert(steps, ["operation_id", "step_id"], STEP_COLUMNS)
        self.upsert_registrations = self.upsert(ems_registrations, ["hostname"], ("endpoint", "registered_at"))
        self.upsert_vnfr = self.upsert(vnfrs, ["id"], ("name", "data", "updated_at"))
        self.upsert_worker = self.upsert(vnfm_workers, ["worker"], ("endpoint", "lease_until"))
        #: a new operation (params: every column); rowcount 0 when it exists
        self.create_operation = self.insert(operations).on_conflict_do_nothing(index_elements=["id"])
        self.operation = select(operations).where(operations.c.id == bindparam("oid"))
        self.operation_for_update = self.operation.with_for_update()
        self.take_over = (update(operations).where(operations.c.id == bindparam("oid"))
                          .values(worker=bindparam("b_worker"), lease_until=bindparam("lease"),
                                  updated_at=bindparam("now"))
                          .returning(*operations.c))
        self.renew_lease = (update(operations)
                            .where(operations.c.id == bindparam("oid"), operations.c.worker == bindparam("b_worker"),
                                   operations.c.state == RUNNING)
                            .values(lease_until=bindparam("lease"), updated_at=bindparam("now"))
                            .returning(operations.c.id))
        self.holder = select(operations.c.worker, operations.c.state).where(operations.c.id == bindparam("oid"))
        self.steps_of = (select(steps).where(steps.c.operation_id == bindparam("oid"))
                         .order_by(steps.c.started_at, steps.c.step_id))
        self.vnfr_data = select(vnfrs.c.data).where(vnfrs.c.id == bindparam("vid"))
        #: a request to the NFVO, recorded unless it is (rowcount 0 then)
        self.record_request = self.insert(nfvo_requests).on_conflict_do_nothing(index_elements=["correlation_id"])
        self.request = select(nfvo_requests).where(nfvo_requests.c.correlation_id == bindparam("cid"))
        #: an answer: params of ``record_request`` with the answer, then ``fill_answer`` (cid, b_answer, now)
        self.fill_answer = (update(nfvo_requests)
                            .where(nfvo_requests.c.correlation_id == bindparam("cid"),
                                   nfvo_requests.c.answer.is_(None))
                            .values(answer=bindparam("b_answer"), answered_at=bindparam("now")))
        self._updates: dict[tuple[frozenset[str], bool], Update] = {}

    def upsert(self, table: Any, keys: list[str], columns: tuple[str, ...]) -> Any:
        """Insert, or update ``columns`` of the row with the same ``keys`` (params: every column)."""
        stmt = self.insert(table)
        return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in columns})

    def update_operation(self, columns: frozenset[str], *, held: bool) -> Update:
        """``UPDATE operations`` of ``columns`` (params ``v_<column>``, ``oid``, ``now``; ``vnfr_id`` and
        ``vnfr_name`` only fill a NULL), only while RUNNING under the worker ``holder`` when ``held``;
        returns the id of the row it changed."""
        cached = self._updates.get((columns, held))
        if cached is not None:
            return cached
        unknown = columns - set(_SETTABLE) - set(_FILLED)
        if unknown:
            raise ValueError(f"not an operation column that can be updated: {sorted(unknown)}")
        values: dict[str, Any] = {"updated_at": bindparam("now")}
        for col in sorted(columns):
            bound = bindparam(f"v_{col}", type_=operations.c[col].type)
            values[col] = func.coalesce(operations.c[col], bound) if col in _FILLED else bound
        cond = [operations.c.id == bindparam("oid")]
        if held:
            cond += [operations.c.worker == bindparam("holder"), operations.c.state == RUNNING]
        stmt = update(operations).where(*cond).values(values).returning(operations.c.id)
        self._updates[(columns, held)] = stmt
        return stmt
