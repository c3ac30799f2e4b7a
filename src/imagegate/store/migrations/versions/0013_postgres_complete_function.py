"""PostgreSQL: a completion's statements in one call, ``complete_job``

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

A worker completed a job in one round trip per statement: the fenced release of the lease,
the ``stored`` event, the refund of what a short delivery does not cost (the balance and its
ledger row), the capture's balance read and ledger row, the ``completed`` event, the webhook's
delivery row and the ``pg_notify``; with pool pre-ping, BEGIN and COMMIT, 8 to 12 trips, each a
wake-up of a body thread that waits for the GIL, while the job's row stayed locked. With the
submits batched (0011, 0012), those trips bounded the PostgreSQL end to end.

``complete_job`` runs them server-side in the same order and returns the job as written, or no
row when ``p_token`` no longer holds the lease: then it wrote nothing, and the caller raises
``LeaseLost``. The caller still decides every value (the charge and the refund, the webhook
delivery's id, the NOTIFY's channel) as ``JobTransitions.complete`` does on SQLite; NULL skips
a part: ``p_outputs`` the stored outputs and their event, ``p_delivery_id`` the webhook row,
``p_channel`` the NOTIFY.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


COMPLETE_JOB = """
        CREATE FUNCTION complete_job(
            p_job_id VARCHAR,
            p_token VARCHAR,
            p_now BIGINT,
            p_charged BIGINT,
            p_expires_at BIGINT,
            p_webhook_status VARCHAR,
            p_provider VARCHAR,
            p_upstream_model VARCHAR,
            p_outputs JSONB,
            p_refund BIGINT,
            p_refund_note VARCHAR,
            p_delivery_id VARCHAR,
            p_channel TEXT
        ) RETURNS SETOF jobs LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_job jobs;
            v_balance BIGINT;
        BEGIN
            UPDATE jobs AS j SET
                provider = CASE WHEN p_outputs IS NULL THEN j.provider ELSE p_provider END,
                upstream_model = CASE WHEN p_outputs IS NULL THEN j.upstream_model
                    ELSE p_upstream_model END,
                outputs = coalesce(p_outputs, j.outputs),
                call_started_at = NULL,
                status = 'COMPLETED',
                step = 'done',
                progress = 100,
                credit_cost = p_charged,
                completed_at = p_now,
                expires_at = p_expires_at,
                webhook_status = p_webhook_status,
                updated_at = p_now,
                lease_owner = NULL,
                lease_token = NULL,
                lease_expires_at = NULL
            WHERE j.id = p_job_id AND j.lease_token = p_token
            RETURNING j.* INTO v_job;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            IF p_outputs IS NOT NULL THEN
                INSERT INTO job_events (job_id, at, kind, data)
                VALUES (p_job_id, p_now, 'stored',
                        jsonb_build_object('outputs', jsonb_array_length(p_outputs)));
            END IF;
            IF p_refund > 0 THEN
                UPDATE accounts AS a SET credits = a.credits + p_refund
                WHERE a.id = v_job.account_id
                RETURNING a.credits INTO v_balance;
                INSERT INTO ledger_entries
                    (account_id, job_id, kind, amount, balance_after, note, created_at)
                VALUES (v_job.account_id, p_job_id, 'refund', p_refund, v_balance, p_refund_note,
                        p_now);
            END IF;
            IF p_charged <> 0 THEN
                SELECT a.credits INTO v_balance FROM accounts AS a WHERE a.id = v_job.account_id;
                INSERT INTO ledger_entries
                    (account_id, job_id, kind, amount, balance_after, note, created_at)
                VALUES (v_job.account_id, p_job_id, 'capture', 0, coalesce(v_balance, 0),
                        'charged ' || p_charged, p_now);
            END IF;
            INSERT INTO job_events (job_id, at, kind, data)
            VALUES (p_job_id, p_now, 'completed', 'null'::jsonb);  -- as add_event writes no data
            IF p_delivery_id IS NOT NULL THEN
                INSERT INTO webhook_deliveries
                    (id, job_id, account_id, event, url, status, attempts, run_at, created_at)
                VALUES (p_delivery_id, p_job_id, v_job.account_id, 'completed',
                        v_job.webhook_url, 'pending', 0, p_now, p_now);
            END IF;
            IF p_channel IS NOT NULL THEN
                PERFORM pg_notify(p_channel, p_job_id);
            END IF;
            RETURN NEXT v_job;
        END
        $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(COMPLETE_JOB)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION complete_job(VARCHAR, VARCHAR, BIGINT, BIGINT, BIGINT, VARCHAR, VARCHAR,"
        " VARCHAR, JSONB, BIGINT, VARCHAR, VARCHAR, TEXT)"
    )
