"""vnfm_workers: one row per live VNFM worker of an endpoint (only the last one unregisters)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vnfm_workers",
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name="pk_vnfm_workers"),
    )
    op.create_index("ix_vnfm_workers_endpoint", "vnfm_workers", ["endpoint"])


def downgrade() -> None:
    op.drop_index("ix_vnfm_workers_endpoint", table_name="vnfm_workers")
    op.drop_table("vnfm_workers")
