"""PostgreSQL: each account's QUEUED and PROCESSING jobs kept as changes, for admission

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Admission counted the account's QUEUED jobs by scanning them while it held the account row's
lock, so one account's submits were serial and each got slower with the backlog (~1.5 ms at
3,000 queued jobs, ~5 ms at 10,000). A counter row, as on SQLite (0007), would be locked by
every status change of the account's jobs. Here triggers on ``jobs`` only *append* changes to
``account_job_count_changes`` (an insert locks nothing another writer waits for), and admission,
holding the account lock, folds the account's rows into one: the sum is the count, and the
table holds about one row per account plus the changes since its last submit.

The triggers are created before the counts are copied in: ``CREATE TRIGGER`` locks ``jobs``
against writes until this migration commits, so no change falls between the two.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRIGGERS = ("job_count_changes_insert", "job_count_changes_update", "job_count_changes_delete")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE TABLE account_job_count_changes (
            account_id VARCHAR(36) NOT NULL,
            queued INTEGER NOT NULL,
            processing INTEGER NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_account_job_count_changes_account_id"
        " ON account_job_count_changes (account_id)"
    )
    # One row per job and change: what it adds to its account's counts, minus what it took.
    op.execute(
        """
        CREATE FUNCTION record_job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.status IN ('QUEUED', 'PROCESSING') THEN
                INSERT INTO account_job_count_changes (account_id, queued, processing)
                VALUES (OLD.account_id, -(OLD.status = 'QUEUED')::int,
                        -(OLD.status = 'PROCESSING')::int);
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.status IN ('QUEUED', 'PROCESSING') THEN
                INSERT INTO account_job_count_changes (account_id, queued, processing)
                VALUES (NEW.account_id, (NEW.status = 'QUEUED')::int,
                        (NEW.status = 'PROCESSING')::int);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    counted = "('QUEUED', 'PROCESSING')"
    op.execute(
        f"""
        CREATE TRIGGER job_count_changes_insert AFTER INSERT ON jobs FOR EACH ROW
        WHEN (NEW.status IN {counted}) EXECUTE FUNCTION record_job_count_change()
        """
    )
    op.execute(
        """
        CREATE TRIGGER job_count_changes_update AFTER UPDATE OF status, account_id ON jobs
        FOR EACH ROW WHEN (
            OLD.status IS DISTINCT FROM NEW.status OR OLD.account_id IS DISTINCT FROM NEW.account_id
        )
        EXECUTE FUNCTION record_job_count_change()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER job_count_changes_delete AFTER DELETE ON jobs FOR EACH ROW
        WHEN (OLD.status IN {counted}) EXECUTE FUNCTION record_job_count_change()
        """
    )
    op.execute(
        f"""
        INSERT INTO account_job_count_changes (account_id, queued, processing)
        SELECT account_id, count(*) FILTER (WHERE status = 'QUEUED'),
               count(*) FILTER (WHERE status = 'PROCESSING')
        FROM jobs WHERE status IN {counted} GROUP BY account_id
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON jobs")
    op.execute("DROP FUNCTION record_job_count_change()")
    op.execute("DROP TABLE account_job_count_changes")
