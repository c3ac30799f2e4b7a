"""a worker's leased jobs are found through an index, not by reading every job

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07

A worker's heartbeat (``claims.renew_owner``, every few seconds) and its shutdown
(``claims.release_owner``) ask for the jobs it holds by ``lease_owner``, which no index covered:
each heartbeat read the whole ``jobs`` table, finished jobs included (13–15 ms of PostgreSQL's
CPU at 3,000 jobs, and growing with every job kept for its retention). The index holds only
leased jobs (``lease_token IS NOT NULL``), so it stays as small as the work in flight.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

LEASED = sa.text("lease_token IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_leased",
        "jobs",
        ["lease_owner"],
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_leased", table_name="jobs")
