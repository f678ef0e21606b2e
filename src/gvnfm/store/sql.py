"""``SqlStore``: the :class:`gvnfm.store.api.Store` on SQLAlchemy 2 (SQLite or PostgreSQL).

- Every method is one transaction, written as a synchronous body that ``gvnfm.store.transactions``
  runs: in the store's own threads on a SQLite file, through the async engine otherwise.

- Claims are atomic across processes: PostgreSQL ``INSERT .. ON CONFLICT DO NOTHING`` then
  ``SELECT .. FOR UPDATE`` and a conditional lease update in one transaction; SQLite runs every write
  transaction as ``BEGIN IMMEDIATE`` (one writer at a time, others wait up to the busy timeout).
- Free text (step output/error, operation error) is bounded to ``max_text`` UTF-8 bytes, keeping the
  tail behind a marker line. Strings are made storable everywhere (NUL and lone surrogates replaced,
  non-finite floats in JSON become null), so odd input can't make a write fail.
- Indexed text keys (operation/step/VNFR ids, hostnames, VNFR names) longer than ``KEY_BYTES`` are
  stored as a prefix plus a SHA-256 digest; every lookup maps its argument the same way.
- Every datetime going in or out is timezone-aware UTC (naive input is taken as UTC).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Executable, Row, case, delete, exists, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gvnfm.store.api import (
    DONE,
    FAILED,
    RUNNING,
    LeaseLost,
    NfvoRequest,
    Operation,
    OperationContext,
    StepResult,
    Store,
)
from gvnfm.store.engine import DEFAULT_BUSY_TIMEOUT, make_engine, normalise_url
from gvnfm.store.migrate import default_url, upgrade_engine
from gvnfm.store.statements import Statements
from gvnfm.store.tables import ems_registrations, nfvo_requests, operations, steps, vnfm_workers, vnfrs
from gvnfm.store.transactions import Transactions

log = logging.getLogger("gvnfm.store")
T = TypeVar("T")

DEFAULT_MAX_TEXT = 64 * 1024
KEY_BYTES = 255
_MIN_MAX_TEXT = 256
_IN_CHUNK = 500
_FINISHED = (DONE, FAILED)


class OperationNotFound(LookupError):
    """A call named an operation the store does not have."""


# -- values ------------------------------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clean_text(text: str) -> str:
    """``text`` made storable in every backend: NUL -> U+FFFD, unencodable code points -> '?'."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_json(value: Any) -> Any:
    """A JSON document that every backend stores: ``value`` itself when it is one already (told by
    serialising it once, in C: no NUL, no lone surrogate, no NaN/inf, keys JSON can write), else a
    cleaned copy (see :func:`clean_text`; NaN/inf -> null, keys made strings). A VNFR of 10 VNFCs:
    0.27 ms walked in Python, 0.03 ms serialised (docs/performance.md, seventh round)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        if "\\u0000" not in text:   # a NUL would be written \u0000 (a false alarm only costs the walk)
            text.encode("utf-8")    # a lone surrogate raises here
            return value
    except (ValueError, TypeError, RecursionError):
        pass
    return _cleaned_json(value)


def _cleaned_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _cleaned_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bound_text(text: str | None, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``: the tail, behind a marker line when cut."""
    text = clean_text(text or "")
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_marker(len(data)).encode("utf-8"))   # the widest marker this text can need
    tail = data[len(data) - room:].decode("utf-8", "ignore")    # drops a split character's bytes
    return _marker(len(data) - len(tail.encode("utf-8"))) + tail


def _marker(dropped: int) -> str:
    return f"[gvnfm: {dropped} bytes truncated, the last part follows]\n"


def key(value: str) -> str:
    """The stored form of an indexed text key (identity up to ``KEY_BYTES`` UTF-8 bytes)."""
    value = clean_text(value)
    data = value.encode("utf-8")
    if len(data) <= KEY_BYTES:
        return value
    digest = hashlib.sha256(data).hexdigest()
    prefix = data[:KEY_BYTES - len(digest) - 8].decode("utf-8", "ignore")
    return f"{prefix}#sha256:{digest}"


def _opt_key(value: str | None) -> str | None:
    return None if value is None else key(value)


def _chunks(items: list[str], size: int = _IN_CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _operation(row: Row[Any]) -> Operation:
    return Operation(
        id=row.id, action=row.action, vnfr_id=row.vnfr_id, vnfr_name=row.vnfr_name, state=row.state,
        request=row.request if row.request is not None else {}, reply=row.reply, error=row.error,
        worker=row.worker, lease_until=row.lease_until, created_at=row.created_at, updated_at=row.updated_at,
        replied=bool(row.replied), context=OperationContext.from_stored(row.context))


def _nfvo_request(row: Row[Any]) -> NfvoRequest:
    answer = row.answer.encode() if row.answer is not None else None
    return NfvoRequest(correlation_id=row.correlation_id, action=row.action, asked_at=as_utc(row.asked_at),
                       answer=answer)


def _step(row: Row[Any]) -> StepResult:
    return StepResult(
        operation_id=row.operation_id, step_id=row.step_id, action=row.action, event=row.event,
        script_index=row.script_index, script=row.script, hostname=row.hostname, vnfr_name=row.vnfr_name,
        status=row.status, output=row.output, error=row.error, started_at=row.started_at, duration=row.duration)


# -- the store -------------------------------------------------------------------------------------------
class SqlStore(Store):
    """Use :meth:`open` (migrates) or :func:`open_store`; the constructor takes a migrated engine."""

    def __init__(self, engine: AsyncEngine, *, max_text: int = DEFAULT_MAX_TEXT,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        if max_text < _MIN_MAX_TEXT:
            raise ValueError(f"max_text must be at least {_MIN_MAX_TEXT} bytes, not {max_text}")
        self.engine = engine
        self.max_text = max_text
        self.dialect = engine.dialect.name
        # built once (a statement reused is keyed and compiled once; one built per call, every time)
        self._q = Statements(self.dialect)
        self._tx = Transactions(engine, busy_timeout=busy_timeout)
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, max_text: int = DEFAULT_MAX_TEXT,
                   busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SqlStore:
        """Connect to ``url`` (normalised to the async driver), migrate it to head, return the store."""
        parsed = normalise_url(url)
        engine = make_engine(parsed, busy_timeout=busy_timeout)
        try:
            revision = await upgrade_engine(engine)
            store = cls(engine, max_text=max_text, busy_timeout=busy_timeout)
        except BaseException:
            await engine.dispose()
            raise
        log.info("event=store_open db=%s revision=%s", parsed.render_as_string(hide_password=True), revision)
        return store

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._tx.close()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- operations ------------------------------------------------------------------------------------
    async def claim_operation(self, op_id: str, *, action: str, vnfr_id: str | None,
                              vnfr_name: str | None, request: dict[str, Any], worker: str,
                              lease_seconds: float) -> tuple[Operation, bool]:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        oid, worker = key(op_id), clean_text(worker)
        q = self._q
        new = {"id": oid, "action": clean_text(action), "vnfr_id": _opt_key(vnfr_id), "vnfr_name": _opt_key(vnfr_name),
               "state": RUNNING, "request": clean_json(request), "reply": None, "error": None, "worker": worker,
               "replied": False}

        def claim(conn: Connection) -> tuple[Operation, bool, str | None]:
            now = utcnow()                 # taken once the write lock is held
            lease = now + timedelta(seconds=lease_seconds)
            created = conn.execute(q.create_operation, {**new, "context": {}, "lease_until": lease, "created_at": now,
                                                        "updated_at": now})
            if (created.rowcount or 0) > 0:   # created: what was inserted is the row
                return Operation(**new, lease_until=lease, created_at=now, updated_at=now,
                                 context=OperationContext(), created_by_claim=True), True, worker
            row = conn.execute(q.operation_for_update, {"oid": oid}).one()
            lease_free = row.lease_until is None or row.lease_until <= now
            if row.state != RUNNING or not (row.worker == worker or lease_free):
                return _operation(row), False, None
            previous = row.worker
            row = conn.execute(q.take_over, {"oid": oid, "b_worker": worker, "lease": lease, "now": now}).one()
            return _operation(row), True, previous

        op, claimed, previous = await self._tx.write(claim)
        if claimed and op.created_by_claim:
            log.debug("event=operation_created op=%s worker=%s", oid, worker)
        elif claimed and previous != worker:
            log.info("event=operation_taken_over op=%s worker=%s previous=%s", oid, worker, previous)
        return op, claimed

    async def renew_lease(self, op_id: str, worker: str, lease_seconds: float) -> bool:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        params = {"oid": key(op_id), "b_worker": clean_text(worker)}

        def renew(conn: Connection) -> bool:
            now = utcnow()
            res = conn.execute(self._q.renew_lease, {**params, "lease": now + timedelta(seconds=lease_seconds),
                                                     "now": now})
            return res.first() is not None

        return await self._tx.write(renew, atomic=False)   # one UPDATE

    async def finish_operation(self, op_id: str, *, state: str, reply: dict[str, Any] | None,
                               error: str | None = None, vnfr_id: str | None = None,
                               vnfr_name: str | None = None, worker: str | None = None,
                               save_vnfr: dict[str, Any] | None = None) -> None:
        if state not in _FINISHED:
            raise ValueError(f"an operation finishes as {' or '.join(_FINISHED)}, not {state!r}")
        if save_vnfr is not None and not (vnfr_id and vnfr_name):
            raise ValueError("save_vnfr needs vnfr_id and vnfr_name")
        # fill in (never replace) the VNFR an INSTANTIATE only learns while it runs
        names = {col: key(v) for col, v in (("vnfr_id", vnfr_id), ("vnfr_name", vnfr_name)) if v}
        also = [] if save_vnfr is None else [self._vnfr_upsert(vnfr_id or "", vnfr_name or "", save_vnfr)]
        await self._update_operation(op_id, state=state, reply=clean_json(reply), lease_until=None,
                                     error=None if error is None else bound_text(error, self.max_text),
                                     holder=worker, also=also, **names)

    async def mark_replied(self, op_id: str) -> None:
        await self._update_operation(op_id, replied=True)

    async def set_context(self, op_id: str, context: OperationContext, *, worker: str | None = None) -> None:
        await self._update_operation(op_id, context=clean_json(context.stored()), holder=worker)

    async def _update_operation(self, op_id: str, *, holder: str | None = None,
                                also: Sequence[tuple[Executable, dict[str, Any]]] = (), **values: Any) -> None:
        """Update one operation (``vnfr_id``, ``vnfr_name``: only where unset); with ``holder`` only while
        it is RUNNING under that worker (the lease holder), checked in the same statement, else
        :class:`LeaseLost`. ``also``: statements (with their params) run in the same transaction once
        the update matched."""
        oid = key(op_id)
        stmt = self._q.update_operation(frozenset(values), held=holder is not None)
        params = {f"v_{col}": value for col, value in values.items()} | {"oid": oid}
        if holder is not None:
            params["holder"] = clean_text(holder)

        def change(conn: Connection) -> tuple[str, str | None] | None:
            """None once updated, else the operation's (state, worker)."""
            if conn.execute(stmt, {**params, "now": utcnow()}).first() is not None:
                for statement, more in also:
                    conn.execute(statement, more)
                return None
            row = conn.execute(self._q.holder, {"oid": oid}).first()
            if row is None:
                raise OperationNotFound(f"operation {op_id!r} is not in the store")
            return row.state, row.worker

        # without ``also``: the UPDATE, then (no match) a read of why: neither needs the other's transaction
        held = await self._tx.write(change, atomic=bool(also))
        if held is not None:
            raise LeaseLost(f"operation {op_id!r} is {held[0]} under {held[1]!r}, not RUNNING under {holder!r}")

    # -- live workers ----------------------------------------------------------------------------------
    async def worker_alive(self, worker: str, endpoint: str, lease_seconds: float) -> None:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")

        def alive(conn: Connection) -> None:
            now = utcnow()
            conn.execute(self._q.upsert_worker, {"worker": key(worker), "endpoint": key(endpoint),
                                                 "lease_until": now + timedelta(seconds=lease_seconds),
                                                 "started_at": now})

        await self._tx.write(alive, atomic=False)   # one upsert

    async def worker_leaving(self, worker: str, endpoint: str) -> int:
        def leave(conn: Connection) -> int:
            # every row of the endpoint locked (PostgreSQL; SQLite: one writer at a time): of two workers
            # leaving at once, the second waits here and then sees the first gone
            conn.execute(select(vnfm_workers.c.worker).where(vnfm_workers.c.endpoint == key(endpoint))
                         .with_for_update())
            conn.execute(delete(vnfm_workers).where(vnfm_workers.c.worker == key(worker)))
            # expired rows (crashed workers) are dropped on the way
            conn.execute(delete(vnfm_workers).where(vnfm_workers.c.endpoint == key(endpoint),
                                                    vnfm_workers.c.lease_until <= utcnow()))
            return int(conn.execute(select(func.count()).select_from(vnfm_workers)
                                    .where(vnfm_workers.c.endpoint == key(endpoint))).scalar_one())

        return await self._tx.write(leave)

    async def latest_operation(self, prefix: str) -> Operation | None:
        query = (select(operations).where(operations.c.id.startswith(clean_text(prefix), autoescape=True))
                 .order_by(case((operations.c.state == RUNNING, 0), else_=1), operations.c.replied,
                           operations.c.created_at.desc(), operations.c.id.desc()).limit(1))
        return await self._tx.read(lambda conn: _first(conn, query, _operation))

    async def get_operation(self, op_id: str) -> Operation | None:
        params = {"oid": key(op_id)}
        return await self._tx.read(lambda conn: _first(conn, self._q.operation, _operation, params))

    async def list_operations(self, *, vnfr_id: str | None = None, state: str | None = None,
                              limit: int = 100) -> list[Operation]:
        """Newest first."""
        query = select(operations)
        if vnfr_id is not None:
            query = query.where(operations.c.vnfr_id == key(vnfr_id))
        if state is not None:
            query = query.where(operations.c.state == state)
        query = query.order_by(operations.c.created_at.desc(), operations.c.id.desc()).limit(max(0, limit))
        return await self._tx.read(lambda conn: [_operation(r) for r in conn.execute(query).all()])

    # -- progress -------------------------------------------------------------------------------------------
    def _step_values(self, result: StepResult) -> dict[str, Any]:
        return {
            "operation_id": key(result.operation_id), "step_id": key(result.step_id),
            "action": clean_text(result.action), "event": clean_text(result.event),
            "script_index": int(result.script_index),
            "script": clean_text(result.script), "hostname": key(result.hostname),
            "vnfr_name": _opt_key(result.vnfr_name), "status": int(result.status),
            "output": bound_text(result.output, self.max_text), "error": bound_text(result.error, self.max_text),
            "started_at": as_utc(result.started_at), "duration": float(result.duration),
        }

    async def record_step(self, result: StepResult) -> None:
        await self.record_steps([result])

    async def record_steps(self, results: list[StepResult]) -> None:
        """Upsert many step results, whole or not at all (the executor records a whole stage at once): one
        transaction on SQLite, one ``executemany`` on PostgreSQL, which asyncpg runs whole."""
        if not results:
            return
        rows = [self._step_values(r) for r in results]
        try:
            await self._tx.write(_executing(self._q.upsert_steps, rows), atomic=False)
        except IntegrityError as exc:
            for op_id in {r.operation_id for r in results}:
                if await self.get_operation(op_id) is None:
                    raise OperationNotFound(f"steps of operation {op_id!r}: the operation is not in the store") from exc
            raise

    async def steps(self, op_id: str) -> list[StepResult]:
        params = {"oid": key(op_id)}
        return await self._tx.read(lambda conn: [_step(r) for r in conn.execute(self._q.steps_of, params).all()])

    # -- failures for RESUME ------------------------------------------------------------------------------
    async def last_failed_operation(self, vnfr_id: str) -> Operation | None:
        failed_step = exists().where(steps.c.operation_id == operations.c.id, steps.c.status != 0)
        query = (select(operations)
                 .where(operations.c.vnfr_id == key(vnfr_id), operations.c.state == FAILED, failed_step)
                 .order_by(operations.c.created_at.desc(), operations.c.id.desc()))

        def last_resumable(conn: Connection) -> Operation | None:
            # operations marked not resumable (ad-hoc EXECUTE, SCRIPTS_UPDATE) are skipped
            for row in conn.execute(query):
                op = _operation(row)
                if op.context.resumable:
                    return op
            return None

        return await self._tx.read(last_resumable)

    # -- VNFRs ----------------------------------------------------------------------------------------------
    def _vnfr_upsert(self, vnfr_id: str, name: str, data: dict[str, Any]) -> tuple[Executable, dict[str, Any]]:
        return self._q.upsert_vnfr, {"id": key(vnfr_id), "name": clean_text(name), "data": clean_json(data),
                                     "updated_at": utcnow()}

    async def save_vnfr(self, vnfr_id: str, name: str, data: dict[str, Any]) -> None:
        await self._tx.write(_executing(*self._vnfr_upsert(vnfr_id, name, data)), atomic=False)

    async def get_vnfr(self, vnfr_id: str) -> dict[str, Any] | None:
        params = {"vid": key(vnfr_id)}
        data = await self._tx.read(lambda conn: conn.execute(self._q.vnfr_data, params).scalar())
        return None if data is None else dict(data)

    async def delete_vnfr(self, vnfr_id: str) -> None:
        await self._tx.write(_executing(delete(vnfrs).where(vnfrs.c.id == key(vnfr_id))), atomic=False)

    # -- EMS registrations --------------------------------------------------------------------------------
    async def record_registration(self, hostname: str, endpoint: str) -> None:
        await self.record_registrations([hostname], endpoint)

    async def record_registrations(self, hostnames: list[str], endpoint: str) -> None:
        """Upsert many registrations in one transaction."""
        if not hostnames:
            return
        now = utcnow()
        rows = [{"hostname": k, "endpoint": clean_text(endpoint), "registered_at": now}
                for k in dict.fromkeys(key(h) for h in hostnames)]
        await self._tx.write(_executing(self._q.upsert_registrations, rows), atomic=False)

    async def registered_hostnames(self, hostnames: list[str]) -> set[str]:
        by_key: dict[str, list[str]] = {}
        for h in hostnames:
            by_key.setdefault(key(h), []).append(h)

        def registered(conn: Connection) -> set[str]:
            found: set[str] = set()
            for chunk in _chunks(list(by_key)):
                rows = conn.execute(select(ems_registrations.c.hostname).where(ems_registrations.c.hostname.in_(chunk)))
                for (k,) in rows.all():
                    found.update(by_key[k])
            return found

        return await self._tx.read(registered)

    async def forget_registrations(self, hostnames: list[str]) -> None:
        keys = sorted({key(h) for h in hostnames})
        if not keys:
            return

        def forget(conn: Connection) -> None:
            for chunk in _chunks(keys):
                conn.execute(delete(ems_registrations).where(ems_registrations.c.hostname.in_(chunk)))

        await self._tx.write(forget)

    # -- requests to the NFVO -------------------------------------------------------------------------------
    async def record_nfvo_request(self, correlation_id: str, action: str) -> NfvoRequest:
        cid = key(correlation_id)

        def record(conn: Connection) -> NfvoRequest:
            res = conn.execute(self._q.record_request, {"correlation_id": cid, "action": clean_text(action),
                                                        "asked_at": utcnow(), "answer": None, "answered_at": None})
            row = conn.execute(self._q.request, {"cid": cid}).one()
            return dataclasses.replace(_nfvo_request(row), created=(res.rowcount or 0) > 0)

        # the insert (or nothing, if recorded before), then the row: whole each on its own
        return await self._tx.write(record, atomic=False)

    async def record_nfvo_answer(self, correlation_id: str, answer: bytes) -> None:
        now = utcnow()
        text = clean_text(answer.decode("utf-8", "replace"))
        cid = key(correlation_id)

        def record(conn: Connection) -> None:
            conn.execute(self._q.record_request, {"correlation_id": cid, "action": None, "asked_at": now,
                                                  "answer": text, "answered_at": now})
            conn.execute(self._q.fill_answer, {"cid": cid, "b_answer": text, "now": now})

        # a new row with its answer, or the answer filled in: either statement leaves the row whole
        await self._tx.write(record, atomic=False)

    async def nfvo_request(self, correlation_id: str) -> NfvoRequest | None:
        params = {"cid": key(correlation_id)}
        return await self._tx.read(lambda conn: _first(conn, self._q.request, _nfvo_request, params))

    # -- script logs ----------------------------------------------------------------------------------------
    async def script_results(self, *, vnfr_name: str | None = None, hostname: str | None = None,
                             limit: int = 1000) -> list[StepResult]:
        """The most recent ``limit`` step results (filtered), oldest first."""
        query = select(steps)
        if vnfr_name is not None:
            query = query.where(steps.c.vnfr_name == key(vnfr_name))
        if hostname is not None:
            query = query.where(steps.c.hostname == key(hostname))
        query = query.order_by(steps.c.started_at.desc(), steps.c.step_id.desc()).limit(max(0, limit))
        rows = await self._tx.read(lambda conn: conn.execute(query).all())
        return [_step(r) for r in reversed(rows)]

    async def prune_script_results(self, older_than: datetime) -> int:
        """Delete the step results started before ``older_than``, except those of RUNNING operations and of
        FAILED ones (RESUME needs to know which steps succeeded; they go once the operation is resumed)."""
        running = select(operations.c.id).where(operations.c.state.in_([RUNNING, FAILED]))
        before = as_utc(older_than)

        def prune(conn: Connection) -> int:
            res = conn.execute(delete(steps).where(steps.c.started_at < before, steps.c.operation_id.not_in(running)))
            # the requests to the NFVO of that age (their operations ended long ago, or gave up waiting)
            conn.execute(delete(nfvo_requests).where(nfvo_requests.c.asked_at < before))
            return max(0, res.rowcount or 0)

        count = await self._tx.write(prune)
        if count:
            log.info("event=script_results_pruned count=%d older_than=%s", count, before.isoformat())
        return count


def _executing(statement: Executable, rows: list[dict[str, Any]] | dict[str, Any] | None = None,
               ) -> Callable[[Connection], None]:
    """The body of one statement (``rows``: its params; a list: executemany, whole or not at all), which
    needs no transaction around it (``Transactions.write(..., atomic=False)``)."""
    def body(conn: Connection) -> None:
        conn.execute(statement, rows)
    return body


def _first(conn: Connection, query: Any, convert: Callable[[Row[Any]], T],
           params: dict[str, Any] | None = None) -> T | None:
    """The first row of ``query`` converted, or None."""
    row = conn.execute(query, params).first()
    return None if row is None else convert(row)


async def open_store(url: str | None, state_dir: Path, *, max_text: int = DEFAULT_MAX_TEXT) -> SqlStore:
    """The VNFM's store: ``url``, or SQLite ``gvnfm.db`` in ``state_dir`` (created) when None."""
    # (the parent directory of a SQLite file is created by the engine)
    return await SqlStore.open(url if url is not None else default_url(state_dir), max_text=max_text)
