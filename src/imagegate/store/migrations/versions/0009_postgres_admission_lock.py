"""PostgreSQL: admission locks the account and reads its job counts in one statement

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Admission holds the account row's lock from the statement that takes it to the commit, and one
account's submits wait on it in turn. Taking the lock and folding the account's count changes
(0008) were two statements, each a round trip and a wake-up of the submitting thread while the
lock was held. ``lock_account_for_admission`` does both in one call. A volatile PL/pgSQL
function takes a new snapshot for each statement, so the fold, run after the lock is granted,
sees every change committed by the admissions before it, exactly as a second statement did.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION lock_account_for_admission(
            p_account_id VARCHAR,
            OUT account accounts,
            OUT queued_jobs INTEGER,
            OUT processing_jobs INTEGER
        ) LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            SELECT * INTO account FROM accounts WHERE id = p_account_id FOR NO KEY UPDATE;
            IF NOT FOUND THEN
                queued_jobs := 0;
                processing_jobs := 0;
                RETURN;
            END IF;
            WITH folded AS (
                DELETE FROM account_job_count_changes AS c WHERE c.account_id = p_account_id
                RETURNING c.queued, c.processing
            )
            INSERT INTO account_job_count_changes AS c (account_id, queued, processing)
            SELECT p_account_id, coalesce(sum(f.queued), 0), coalesce(sum(f.processing), 0)
            FROM folded AS f
            RETURNING c.queued, c.processing INTO queued_jobs, processing_jobs;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION lock_account_for_admission(VARCHAR)")
