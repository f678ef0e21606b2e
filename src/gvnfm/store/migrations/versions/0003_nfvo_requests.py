"""nfvo_requests: the VNFM's requests to the NFVO and their answers (survive the asking worker)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nfvo_requests",
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("correlation_id", name="pk_nfvo_requests"),
    )
    op.create_index("ix_nfvo_requests_asked_at", "nfvo_requests", ["asked_at"])


def downgrade() -> None:
    op.drop_index("ix_nfvo_requests_asked_at", table_name="nfvo_requests")
    op.drop_table("nfvo_requests")
