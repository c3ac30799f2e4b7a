"""per-account caps (concurrent jobs, daily spend) and per-key limits (request rates, models)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Every new column is nullable and NULL means "no limit of its own": existing accounts keep no cap
and existing keys follow the gateway-wide default rates and may use every model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("max_concurrent_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_daily_spend", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("submit_rate", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("read_rate", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column(
                "allowed_models", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("allowed_models")
        batch.drop_column("read_rate")
        batch.drop_column("submit_rate")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("max_daily_spend")
        batch.drop_column("max_concurrent_jobs")
