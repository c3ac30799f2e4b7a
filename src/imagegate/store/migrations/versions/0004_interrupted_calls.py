"""jobs remember a paid upstream call in flight, and how many were interrupted

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``call_started_at`` is set (a fenced write) just before a worker makes a paid submit call and
cleared with the lease when the call's outcome is recorded; a worker taking over a job that still
has it set knows the previous call was cut off before its answer arrived. ``interrupted_calls``
counts such calls the job was submitted again after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("call_started_at", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("interrupted_calls", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("interrupted_calls")
        batch.drop_column("call_started_at")
