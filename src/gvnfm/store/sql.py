"""``SqlStore``: the :class:`gvnfm.store.api.Store` on SQLAlchemy 2 async (SQLite or PostgreSQL).

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

import asyncio
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Row, case, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gvnfm.ops.metrics import STORE_COMMIT_SECONDS
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
from gvnfm.store.engine import DEFAULT_BUSY_TIMEOUT, is_memory, make_engine, normalise_url, writer
from gvnfm.store.migrate import default_url, upgrade_engine
from gvnfm.store.tables import ems_registrations, nfvo_requests, operations, steps, vnfm_workers, vnfrs

log = logging.getLogger("gvnfm.store")

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
    """A copy of a JSON document that every backend stores (see :func:`clean_text`; NaN/inf -> null)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
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


#: rows per multi-row INSERT (SQLite allows 32766 bound parameters; a step row has 13)
_STEP_COLUMNS = ("action", "event", "script_index", "script", "hostname", "vnfr_name", "status", "output", "error",
                 "started_at", "duration")


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

    def __init__(self, engine: AsyncEngine, *, max_text: int = DEFAULT_MAX_TEXT) -> None:
        if max_text < _MIN_MAX_TEXT:
            raise ValueError(f"max_text must be at least {_MIN_MAX_TEXT} bytes, not {max_text}")
        self.engine = engine
        self.max_text = max_text
        self._writer = writer(engine)
        self.dialect = engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        self._memory = self._sqlite and is_memory(engine.url)
        # built once: a statement object reused with executemany is compiled once (SQLAlchemy caches
        # it), where a fresh multi-row ``values(...)`` is built and compiled on every call
        self._upsert_steps = self._upsert(steps, ["operation_id", "step_id"], _STEP_COLUMNS)
        self._upsert_registrations = self._upsert(ems_registrations, ["hostname"], ("endpoint", "registered_at"))
        # SQLite: one writer transaction per process at a time (others would only spin on the file lock);
        # an in-memory database has one shared connection, so readers take the lock too.
        self._lock = asyncio.Lock() if self._sqlite else None
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, max_text: int = DEFAULT_MAX_TEXT,
                   busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SqlStore:
        """Connect to ``url`` (normalised to the async driver), migrate it to head, return the store."""
        parsed = normalise_url(url)
        engine = make_engine(parsed, busy_timeout=busy_timeout)
        try:
            revision = await upgrade_engine(engine)
            store = cls(engine, max_text=max_text)
        except BaseException:
            await engine.dispose()
            raise
        log.info("event=store_open db=%s revision=%s", parsed.render_as_string(hide_password=True), revision)
        return store

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.engine.dispose()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transactions ----------------------------------------------------------------------------------
    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock or nullcontext():
            started = time.monotonic()
            async with self._writer.begin() as conn:
                yield conn
            STORE_COMMIT_SECONDS.observe(time.monotonic() - started)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        lock: AbstractAsyncContextManager[Any] = self._lock if self._memory and self._lock else nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _upsert(self, table: Any, keys: list[str], columns: Iterable[str]) -> Any:
        stmt = self._insert(table)
        return stmt.on_conflict_do_update(index_elements=keys,
                                          set_={c: stmt.excluded[c] for c in columns if c not in keys})

    # -- operations ------------------------------------------------------------------------------------
    async def claim_operation(self, op_id: str, *, action: str, vnfr_id: str | None,
                              vnfr_name: str | None, request: dict[str, Any], worker: str,
                              lease_seconds: float) -> tuple[Operation, bool]:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        oid, worker = key(op_id), clean_text(worker)
        async with self._write() as conn:
            now = utcnow()                 # taken once the write lock is held
            lease = now + timedelta(seconds=lease_seconds)
            inserted = (await conn.execute(
                self._insert(operations).values(
                    id=oid, action=clean_text(action), vnfr_id=_opt_key(vnfr_id), vnfr_name=_opt_key(vnfr_name),
                    state=RUNNING, request=clean_json(request), reply=None, error=None, worker=worker,
                    lease_until=lease, replied=False, context={}, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(*operations.c))).first()
            if inserted is not None:       # created: the row came back from the insert itself
                log.debug("event=operation_created op=%s worker=%s", oid, worker)
                return dataclasses.replace(_operation(inserted), created_by_claim=True), True
            row = (await conn.execute(
                select(operations).where(operations.c.id == oid).with_for_update())).one()
            lease_free = row.lease_until is None or row.lease_until <= now
            if row.state != RUNNING or not (row.worker == worker or lease_free):
                return _operation(row), False
            previous = row.worker
            row = (await conn.execute(
                update(operations).where(operations.c.id == oid)
                .values(worker=worker, lease_until=lease, updated_at=now)
                .returning(*operations.c))).one()
        if previous != worker:
            log.info("event=operation_taken_over op=%s worker=%s previous=%s", oid, worker, previous)
        return _operation(row), True

    async def renew_lease(self, op_id: str, worker: str, lease_seconds: float) -> bool:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        async with self._write() as conn:
            now = utcnow()
            res = await conn.execute(
                update(operations)
                .where(operations.c.id == key(op_id), operations.c.worker == clean_text(worker),
                       operations.c.state == RUNNING)
                .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
                .returning(operations.c.id))
            return res.first() is not None

    async def finish_operation(self, op_id: str, *, state: str, reply: dict[str, Any] | None,
                               error: str | None = None, vnfr_id: str | None = None,
                               vnfr_name: str | None = None, worker: str | None = None,
                               save_vnfr: dict[str, Any] | None = None) -> None:
        if state not in _FINISHED:
            raise ValueError(f"an operation finishes as {' or '.join(_FINISHED)}, not {state!r}")
        if save_vnfr is not None and not (vnfr_id and vnfr_name):
            raise ValueError("save_vnfr needs vnfr_id and vnfr_name")
        # fill in (never replace) the VNFR an INSTANTIATE only learns while it runs
        names = {col: func.coalesce(operations.c[col], key(v))
                 for col, v in (("vnfr_id", vnfr_id), ("vnfr_name", vnfr_name)) if v}
        also = [] if save_vnfr is None else [self._vnfr_upsert(vnfr_id or "", vnfr_name or "", save_vnfr)]
        await self._update_operation(op_id, state=state, reply=clean_json(reply), lease_until=None,
                                     error=None if error is None else bound_text(error, self.max_text),
                                     holder=worker, also=also, **names)

    async def mark_replied(self, op_id: str) -> None:
        await self._update_operation(op_id, replied=True)

    async def set_context(self, op_id: str, context: OperationContext, *, worker: str | None = None) -> None:
        await self._update_operation(op_id, context=clean_json(context.stored()), holder=worker)

    async def _update_operation(self, op_id: str, *, holder: str | None = None, also: Sequence[Executable] = (),
                                **values: Any) -> None:
        """Update one operation; with ``holder`` only while it is RUNNING under that worker (the lease
        holder), checked in the same statement, else :class:`LeaseLost`. ``also``: statements run in
        the same transaction once the update matched."""
        oid = key(op_id)
        cond = [operations.c.id == oid]
        if holder is not None:
            cond += [operations.c.worker == clean_text(holder), operations.c.state == RUNNING]
        async with self._write() as conn:
            res = await conn.execute(
                update(operations).where(*cond).values(updated_at=utcnow(), **values).returning(operations.c.id))
            if res.first() is not None:
                for statement in also:
                    await conn.execute(statement)
                return
            row = (await conn.execute(select(operations.c.worker, operations.c.state)
                                      .where(operations.c.id == oid))).first()
        if row is None:
            raise OperationNotFound(f"operation {op_id!r} is not in the store")
        raise LeaseLost(f"operation {op_id!r} is {row.state} under {row.worker!r}, not RUNNING under {holder!r}")

    # -- live workers ----------------------------------------------------------------------------------
    async def worker_alive(self, worker: str, endpoint: str, lease_seconds: float) -> None:
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        async with self._write() as conn:
            now = utcnow()
            stmt = self._insert(vnfm_workers).values(worker=key(worker), endpoint=key(endpoint),
                                                     lease_until=now + timedelta(seconds=lease_seconds),
                                                     started_at=now)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["worker"], set_={"endpoint": stmt.excluded.endpoint,
                                                 "lease_until": stmt.excluded.lease_until}))

    async def worker_leaving(self, worker: str, endpoint: str) -> int:
        async with self._write() as conn:
            # every row of the endpoint locked (PostgreSQL; SQLite: one writer at a time): of two workers
            # leaving at once, the second waits here and then sees the first gone
            await conn.execute(select(vnfm_workers.c.worker).where(vnfm_workers.c.endpoint == key(endpoint))
                               .with_for_update())
            await conn.execute(delete(vnfm_workers).where(vnfm_workers.c.worker == key(worker)))
            # expired rows (crashed workers) are dropped on the way
            await conn.execute(delete(vnfm_workers).where(vnfm_workers.c.endpoint == key(endpoint),
                                                          vnfm_workers.c.lease_until <= utcnow()))
            others = (await conn.execute(select(func.count()).select_from(vnfm_workers)
                                         .where(vnfm_workers.c.endpoint == key(endpoint)))).scalar_one()
        return int(others)

    async def latest_operation(self, prefix: str) -> Operation | None:
        query = (select(operations).where(operations.c.id.startswith(clean_text(prefix), autoescape=True))
                 .order_by(case((operations.c.state == RUNNING, 0), else_=1), operations.c.replied,
                           operations.c.created_at.desc(), operations.c.id.desc()).limit(1))
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _operation(row)

    async def get_operation(self, op_id: str) -> Operation | None:
        async with self._read() as conn:
            row = (await conn.execute(select(operations).where(operations.c.id == key(op_id)))).first()
        return None if row is None else _operation(row)

    async def list_operations(self, *, vnfr_id: str | None = None, state: str | None = None,
                              limit: int = 100) -> list[Operation]:
        """Newest first."""
        query = select(operations)
        if vnfr_id is not None:
            query = query.where(operations.c.vnfr_id == key(vnfr_id))
        if state is not None:
            query = query.where(operations.c.state == state)
        query = query.order_by(operations.c.created_at.desc(), operations.c.id.desc()).limit(max(0, limit))
        async with self._read() as conn:
            return [_operation(r) for r in (await conn.execute(query)).all()]

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
        """Upsert many step results in one transaction (the executor records a whole stage at once)."""
        if not results:
            return
        rows = [self._step_values(r) for r in results]
        try:
            async with self._write() as conn:
                await conn.execute(self._upsert_steps, rows)
        except IntegrityError as exc:
            for op_id in {r.operation_id for r in results}:
                if await self.get_operation(op_id) is None:
                    raise OperationNotFound(f"steps of operation {op_id!r}: the operation is not in the store") from exc
            raise

    async def steps(self, op_id: str) -> list[StepResult]:
        query = (select(steps).where(steps.c.operation_id == key(op_id))
                 .order_by(steps.c.started_at, steps.c.step_id))
        async with self._read() as conn:
            return [_step(r) for r in (await conn.execute(query)).all()]

    # -- failures for RESUME ------------------------------------------------------------------------------
    async def last_failed_operation(self, vnfr_id: str) -> Operation | None:
        failed_step = exists().where(steps.c.operation_id == operations.c.id, steps.c.status != 0)
        query = (select(operations)
                 .where(operations.c.vnfr_id == key(vnfr_id), operations.c.state == FAILED, failed_step)
                 .order_by(operations.c.created_at.desc(), operations.c.id.desc()))
        async with self._read() as conn:
            # operations marked not resumable (ad-hoc EXECUTE, SCRIPTS_UPDATE) are skipped
            for row in await conn.execute(query):
                op = _operation(row)
                if op.context.resumable:
                    return op
        return None

    # -- VNFRs ----------------------------------------------------------------------------------------------
    def _vnfr_upsert(self, vnfr_id: str, name: str, data: dict[str, Any]) -> Executable:
        values = {"id": key(vnfr_id), "name": clean_text(name), "data": clean_json(data), "updated_at": utcnow()}
        stmt = self._insert(vnfrs).values(**values)
        return stmt.on_conflict_do_update(index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"})

    async def save_vnfr(self, vnfr_id: str, name: str, data: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(self._vnfr_upsert(vnfr_id, name, data))

    async def get_vnfr(self, vnfr_id: str) -> dict[str, Any] | None:
        async with self._read() as conn:
            data = (await conn.execute(select(vnfrs.c.data).where(vnfrs.c.id == key(vnfr_id)))).scalar()
        return None if data is None else dict(data)

    async def delete_vnfr(self, vnfr_id: str) -> None:
        async with self._write() as conn:
            await conn.execute(delete(vnfrs).where(vnfrs.c.id == key(vnfr_id)))

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
        async with self._write() as conn:
            await conn.execute(self._upsert_registrations, rows)

    async def registered_hostnames(self, hostnames: list[str]) -> set[str]:
        by_key: dict[str, list[str]] = {}
        for h in hostnames:
            by_key.setdefault(key(h), []).append(h)
        found: set[str] = set()
        async with self._read() as conn:
            for chunk in _chunks(list(by_key)):
                rows = await conn.execute(select(ems_registrations.c.hostname)
                                          .where(ems_registrations.c.hostname.in_(chunk)))
                for (k,) in rows.all():
                    found.update(by_key[k])
        return found

    async def forget_registrations(self, hostnames: list[str]) -> None:
        keys = sorted({key(h) for h in hostnames})
        if not keys:
            return
        async with self._write() as conn:
            for chunk in _chunks(keys):
                await conn.execute(delete(ems_registrations).where(ems_registrations.c.hostname.in_(chunk)))

    # -- requests to the NFVO -------------------------------------------------------------------------------
    async def record_nfvo_request(self, correlation_id: str, action: str) -> NfvoRequest:
        async with self._write() as conn:
            res = await conn.execute(self._insert(nfvo_requests).values(
                correlation_id=key(correlation_id), action=clean_text(action), asked_at=utcnow(),
                answer=None, answered_at=None).on_conflict_do_nothing(index_elements=["correlation_id"]))
            row = (await conn.execute(select(nfvo_requests)
                                      .where(nfvo_requests.c.correlation_id == key(correlation_id)))).one()
        return dataclasses.replace(_nfvo_request(row), created=(res.rowcount or 0) > 0)

    async def record_nfvo_answer(self, correlation_id: str, answer: bytes) -> None:
        now = utcnow()
        text = clean_text(answer.decode("utf-8", "replace"))
        async with self._write() as conn:
            await conn.execute(self._insert(nfvo_requests).values(
                correlation_id=key(correlation_id), action=None, asked_at=now, answer=text, answered_at=now)
                .on_conflict_do_nothing(index_elements=["correlation_id"]))
            await conn.execute(update(nfvo_requests)
                               .where(nfvo_requests.c.correlation_id == key(correlation_id),
                                      nfvo_requests.c.answer.is_(None))
                               .values(answer=text, answered_at=now))

    async def nfvo_request(self, correlation_id: str) -> NfvoRequest | None:
        async with self._read() as conn:
            row = (await conn.execute(select(nfvo_requests)
                                      .where(nfvo_requests.c.correlation_id == key(correlation_id)))).first()
        return None if row is None else _nfvo_request(row)

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
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_step(r) for r in reversed(rows)]

    async def prune_script_results(self, older_than: datetime) -> int:
        """Delete the step results started before ``older_than``, except those of RUNNING operations and of
        FAILED ones (RESUME needs to know which steps succeeded; they go once the operation is resumed)."""
        running = select(operations.c.id).where(operations.c.state.in_([RUNNING, FAILED]))
        async with self._write() as conn:
            res = await conn.execute(
                delete(steps).where(steps.c.started_at < as_utc(older_than), steps.c.operation_id.not_in(running)))
            count = max(0, res.rowcount or 0)
            # the requests to the NFVO of that age (their operations ended long ago, or gave up waiting)
            await conn.execute(delete(nfvo_requests).where(nfvo_requests.c.asked_at < as_utc(older_than)))
        if count:
            log.info("event=script_results_pruned count=%d older_than=%s", count, as_utc(older_than).isoformat())
        return count


async def open_store(url: str | None, state_dir: Path, *, max_text: int = DEFAULT_MAX_TEXT) -> SqlStore:
    """The VNFM's store: ``url``, or SQLite ``gvnfm.db`` in ``state_dir`` (created) when None."""
    # (the parent directory of a SQLite file is created by the engine)
    return await SqlStore.open(url if url is not None else default_url(state_dir), max_text=max_text)
