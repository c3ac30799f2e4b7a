"""PostgreSQL: completions of one account's jobs in one statement, ``complete_jobs``

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

A worker completed each job with its own ``complete_job`` (0013) statement and commit: a
hand-off to a body thread, the statement's execution in SQLAlchemy and psycopg, and a commit
that waits its turn on PostgreSQL's NOTIFY lock and the WAL flush, per job. ``complete_jobs``
takes a batch of completions (a JSONB array, as ``submit_jobs`` takes submits) and runs
``complete_job`` for each, in one statement, so one commit records them all; it returns the
jobs it completed, and no row for a job whose ``token`` no longer holds the lease (nothing is
written for that one).

Its locks come in an order nothing else takes them in reverse: first every job row of the
batch, in id order (as the heartbeat and ``mark_calls`` lock theirs), then the account row,
shared, by each capture. A cancel locks its job before the account, so it never holds the
account while waiting for a job of the batch. The caller puts only one account's jobs in a
batch, and none with a refund (a refund would lock the account exclusively while another
batch of the same account holds it shared): a submit batch locks several accounts in arrival
order, and a batch holding two accounts' locks could wait on it in a cycle.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


COMPLETE_JOBS = """
        CREATE FUNCTION complete_jobs(p_batch JSONB) RETURNS SETOF jobs
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_item RECORD;
        BEGIN
            PERFORM 1 FROM jobs AS j
            WHERE j.id IN (SELECT b.id FROM jsonb_to_recordset(p_batch) AS b(id VARCHAR))
            ORDER BY j.id
            FOR NO KEY UPDATE;
            FOR v_item IN
                SELECT * FROM jsonb_to_recordset(p_batch) AS b(
                    id VARCHAR, token VARCHAR, at_ms BIGINT, charged BIGINT, expires_at BIGINT,
                    webhook_status VARCHAR, provider VARCHAR, upstream_model VARCHAR,
                    outputs JSONB, delivery_id VARCHAR, channel TEXT)
                ORDER BY b.id
            LOOP
                RETURN QUERY SELECT * FROM complete_job(
                    v_item.id, v_item.token, v_item.at_ms, v_item.charged, v_item.expires_at,
                    v_item.webhook_status, v_item.provider, v_item.upstream_model,
                    v_item.outputs, 0, '', v_item.delivery_id, v_item.channel);
            END LOOP;
        END
        $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(COMPLETE_JOBS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION complete_jobs(JSONB)")
