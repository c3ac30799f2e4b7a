"""provider slots and health (caps, rate windows, circuit breaker); per-job retention

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "provider_slots",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("provider", "slot", name=op.f("pk_provider_slots")),
    )
    op.create_table(
        "provider_health",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_until", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cooldown_until", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("window_start", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("window_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("misconfigured", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_health")),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retention_days")
    op.drop_table("provider_health")
    op.drop_table("provider_slots")
