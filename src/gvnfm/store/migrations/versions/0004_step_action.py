"""steps.action: the EMS command of each step, stored instead of being read off the step id

Rows recorded before this revision get it from their step id, as the plan of that time built the ids:
``<event>/<index>/<host>/<run>`` a script run (EXECUTE), ``CONFIGURE/<index>/<host>/dependency``
SAVE_VNFR_DEPENDENCY, ``UPDATE_SCRIPT/<name>/<host>`` SCRIPTS_UPDATE, ``DELIVER/clone/<host>``
CLONE_SCRIPTS (its ``script`` is the link), ``DELIVER/<name>/<host>`` and ``EXECUTE_SAVE/<host>``
SAVE_SCRIPTS. A script run is what the id parsing of that time (``plan.is_script_run``) called one:
a script index and no ``/dependency`` ending.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _backfill(dialect: str) -> str:
    """The UPDATE that fills in the action of the rows without one (exact, case-sensitive matches)."""
    ends_dependency = ("substr(step_id, -11) = '/dependency'" if dialect == "sqlite"
                       else "right(step_id, 11) = '/dependency'")

    def starts(prefix: str) -> str:
        return f"substr(step_id, 1, {len(prefix)}) = '{prefix}'"

    return f"""
        UPDATE steps SET action = CASE
            WHEN script_index >= 0 AND NOT ({ends_dependency}) THEN 'EXECUTE'
            WHEN script_index >= 0 THEN 'SAVE_VNFR_DEPENDENCY'
            WHEN {starts('UPDATE_SCRIPT/')} THEN 'SCRIPTS_UPDATE'
            WHEN {starts('DELIVER/clone/')} AND script <> 'clone' THEN 'CLONE_SCRIPTS'
            WHEN {starts('DELIVER/')} OR {starts('EXECUTE_SAVE/')} THEN 'SAVE_SCRIPTS'
            ELSE action
        END
        WHERE action = ''
    """


def upgrade() -> None:
    op.add_column("steps", sa.Column("action", sa.Text(), nullable=False, server_default=""))
    op.execute(_backfill(op.get_bind().dialect.name))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("action")
