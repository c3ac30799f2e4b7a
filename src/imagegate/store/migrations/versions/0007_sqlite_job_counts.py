"""SQLite: each account's QUEUED and PROCESSING jobs counted by triggers, for admission

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Admission compares an account's queued and active jobs with its caps on every submit. Counting
them scanned every such row, so a submit got slower with each job in the backlog. On SQLite one
writer runs every transaction, so triggers on ``jobs`` keep the two numbers in
``account_job_counts`` at no cost in contention, and admission reads one row. PostgreSQL keeps
counting through ``ix_jobs_account_status``: a counter row there would be locked by every
status change of the account's jobs, serialising them and deadlocking multi-account claims.

A later migration that rebuilds ``jobs`` on SQLite (``batch_alter_table``) drops these triggers
and must create them again (``create_triggers``).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTED = {"queued": "QUEUED", "processing": "PROCESSING"}


def _delta(row: str, sign: str) -> str:
    return ", ".join(
        f"{column} = {column} {sign} ({row}.status = '{status}')"
        for column, status in COUNTED.items()
    )


def create_triggers() -> None:
    op.execute(
        f"""
        CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
        WHEN new.status IN ('QUEUED', 'PROCESSING')
        BEGIN
            INSERT OR IGNORE INTO account_job_counts (account_id) VALUES (new.account_id);
            UPDATE account_job_counts SET {_delta("new", "+")}
            WHERE account_id = new.account_id;
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER job_counts_update AFTER UPDATE OF status, account_id ON jobs
        WHEN old.status IS NOT new.status OR old.account_id IS NOT new.account_id
        BEGIN
            INSERT OR IGNORE INTO account_job_counts (account_id) VALUES (new.account_id);
            UPDATE account_job_counts SET {_delta("old", "-")}
            WHERE account_id = old.account_id;
            UPDATE account_job_counts SET {_delta("new", "+")}
            WHERE account_id = new.account_id;
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
        WHEN old.status IN ('QUEUED', 'PROCESSING')
        BEGIN
            UPDATE account_job_counts SET {_delta("old", "-")}
            WHERE account_id = old.account_id;
        END
        """
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        """
        CREATE TABLE account_job_counts (
            account_id VARCHAR(36) NOT NULL PRIMARY KEY
                REFERENCES accounts (id) ON DELETE CASCADE,
            queued INTEGER NOT NULL DEFAULT 0,
            processing INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        """
        INSERT INTO account_job_counts (account_id, queued, processing)
        SELECT account_id, sum(status = 'QUEUED'), sum(status = 'PROCESSING')
        FROM jobs WHERE status IN ('QUEUED', 'PROCESSING') GROUP BY account_id
        """
    )
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("job_counts_insert", "job_counts_update", "job_counts_delete"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE account_job_counts")
