"""PostgreSQL: a completion's capture reads the balance after every change in flight commits

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

A capture's ledger row (``complete_job``, 0013) records the account's balance, read without a
lock. A refund or a reservation of the same account in flight (a cancel, a submit batch) had
already taken its ledger row's id and moved the balance, uncommitted; the capture read the
balance before it, took a later id, and its row then named a balance that no later row
corrected: the ledger's last ``balance_after`` was not the account's credits (seen with
submits, cancels and completions racing, 2026-12-07 03:25 UTC). The read now takes a share
lock on the account row: it waits for those writers to commit, and a writer that comes after
it waits for the completion, so the rows' order by id is the balance's order. Captures do not
wait on each other (share locks do not conflict).
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import earlier

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UNLOCKED_READ = "SELECT a.credits INTO v_balance FROM accounts AS a WHERE a.id = v_job.account_id;"
SHARED_READ = (
    "SELECT a.credits INTO v_balance FROM accounts AS a WHERE a.id = v_job.account_id\n"
    "                FOR SHARE;"
)


def _complete_job_of_0013() -> str:
    sql = str(earlier("0013_postgres_complete_function.py").COMPLETE_JOB)
    assert sql.count(UNLOCKED_READ) == 1
    return sql.replace("CREATE FUNCTION complete_job(", "CREATE OR REPLACE FUNCTION complete_job(")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_complete_job_of_0013().replace(UNLOCKED_READ, SHARED_READ))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_complete_job_of_0013())
