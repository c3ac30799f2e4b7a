"""provider concurrency as leases: one row per call in flight instead of one row per slot

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

``provider_slots`` held ``max_concurrency`` rows per provider whether or not they were used, so a
cap of 100,000 cost 100,000 rows (and seconds of inserts on first use). ``provider_leases`` holds
one row per call upstream in flight; the rows of dead holders expire. Calls in flight during the
upgrade are not carried over: their slots are released, like a restart's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("provider_slots")
    op.create_table(
        "provider_leases",
        sa.Column("ticket", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ticket", name=op.f("pk_provider_leases")),
    )
    op.create_index(
        op.f("ix_provider_leases_provider_expires_at"),
        "provider_leases",
        ["provider", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_leases_provider_expires_at"), table_name="provider_leases")
    op.drop_table("provider_leases")
    op.create_table(
        "provider_slots",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("provider", "slot", name=op.f("pk_provider_slots")),
    )
