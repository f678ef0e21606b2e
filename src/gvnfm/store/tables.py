"""The store's schema (SQLAlchemy 2 typed declarative). Alembic migrations in ``migrations/versions``
create exactly this; ``tests/integration/test_store_sql.py`` checks they agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON documents: JSONB on PostgreSQL, JSON text elsewhere. Python None is SQL NULL.
JsonDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text; naive input = UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OperationRow(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_vnfr_id_state", "vnfr_id", "state"),
        Index("ix_operations_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    action: Mapped[str] = mapped_column(Text)
    vnfr_id: Mapped[str | None] = mapped_column(Text)
    vnfr_name: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    request: Mapped[Any] = mapped_column(JsonDoc)
    reply: Mapped[Any | None] = mapped_column(JsonDoc, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    replied: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[Any] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StepRow(Base):
    __tablename__ = "steps"
    __table_args__ = (
        # the unique (operation_id, step_id) key of the upsert
        PrimaryKeyConstraint("operation_id", "step_id", name="pk_steps"),
        Index("ix_steps_vnfr_name_hostname", "vnfr_name", "hostname"),
        Index("ix_steps_started_at", "started_at"),
    )

    operation_id: Mapped[str] = mapped_column(Text, ForeignKey("operations.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(Text)
    # the EMS command (EXECUTE: a script run); rows older than 0004 got it from their step id
    action: Mapped[str] = mapped_column(Text, server_default="")
    event: Mapped[str] = mapped_column(Text)
    script_index: Mapped[int] = mapped_column(Integer)
    script: Mapped[str] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(Text)
    vnfr_name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration: Mapped[float] = mapped_column(Float)


class VnfrRow(Base):
    __tablename__ = "vnfrs"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(JsonDoc)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EmsRegistrationRow(Base):
    __tablename__ = "ems_registrations"

    hostname: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


class NfvoRequestRow(Base):
    """A request of the VNFM to the NFVO (GRANT_OPERATION, ALLOCATE_RESOURCES, SCALING), recorded before
    it is sent, and the NFVO's answer once any worker received it: the worker that takes an operation
    over collects the answer instead of asking again."""

    __tablename__ = "nfvo_requests"
    __table_args__ = (Index("ix_nfvo_requests_asked_at", "asked_at"),)

    correlation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    action: Mapped[str | None] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WorkerRow(Base):
    """A live VNFM worker of an endpoint: its row is renewed while it runs (``lease_until``), deleted
    when it stops; a crashed worker's row expires. Only the last live worker unregisters."""

    __tablename__ = "vnfm_workers"
    __table_args__ = (Index("ix_vnfm_workers_endpoint", "endpoint"),)

    worker: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text)
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)


# (``__table__`` is typed as any FromClause; a declarative class's is its Table)
operations = cast(Table, OperationRow.__table__)
steps = cast(Table, StepRow.__table__)
vnfrs = cast(Table, VnfrRow.__table__)
ems_registrations = cast(Table, EmsRegistrationRow.__table__)
nfvo_requests = cast(Table, NfvoRequestRow.__table__)
vnfm_workers = cast(Table, WorkerRow.__table__)
