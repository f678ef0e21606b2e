"""initial schema: operations, steps, vnfrs, ems_registrations

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("vnfr_id", sa.Text(), nullable=True),
        sa.Column("vnfr_name", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("request", _json(), nullable=False),
        sa.Column("reply", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.Column("replied", sa.Boolean(), nullable=False),
        sa.Column("context", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
    )
    op.create_index("ix_operations_vnfr_id_state", "operations", ["vnfr_id", "state"])
    op.create_index("ix_operations_created_at", "operations", ["created_at"])

    op.create_table(
        "steps",
        sa.Column("operation_id", sa.Text(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("script_index", sa.Integer(), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("vnfr_name", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["operation_id"], ["operations.id"], name="fk_steps_operation_id_operations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operation_id", "step_id", name="pk_steps"),
    )
    op.create_index("ix_steps_vnfr_name_hostname", "steps", ["vnfr_name", "hostname"])
    op.create_index("ix_steps_started_at", "steps", ["started_at"])

    op.create_table(
        "vnfrs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vnfrs"),
    )

    op.create_table(
        "ems_registrations",
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("registered_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("hostname", name="pk_ems_registrations"),
    )


def downgrade() -> None:
    op.drop_table("ems_registrations")
    op.drop_table("vnfrs")
    op.drop_index("ix_steps_started_at", table_name="steps")
    op.drop_index("ix_steps_vnfr_name_hostname", table_name="steps")
    op.drop_table("steps")
    op.drop_index("ix_operations_created_at", table_name="operations")
    op.drop_index("ix_operations_vnfr_id_state", table_name="operations")
    op.drop_table("operations")
