"""PostgreSQL: ``complete_jobs`` finds its batch's jobs by their keys

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

``complete_jobs`` (0022) locked and updated its batch's jobs by joining ``jobs`` to the batch's
rows (``jsonb_to_recordset``), which the planner estimates at 100 rows whatever the batch holds:
on a table of a few thousand jobs it chose to read the whole table and hash the batch, once to
lock and once to update, for every batch (the plan then cached for the session). The ids are now
gathered first and each statement asks for ``id = ANY`` of them, which the primary key answers.
The rows written, their order and the order of the locks are unchanged.
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import earlier

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

COMPLETE_JOBS = """
        CREATE OR REPLACE FUNCTION complete_jobs(p_batch JSONB) RETURNS SETOF jobs
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_ids VARCHAR[];
            v_done jobs[];
        BEGIN
            -- The batch's jobs are found by their keys (v_ids): joined to the batch's rows
            -- instead, the planner takes the batch for 100 rows and reads the whole table.
            SELECT array_agg(b.id) INTO v_ids FROM jsonb_to_recordset(p_batch) AS b(id VARCHAR);
            PERFORM 1 FROM jobs AS j
            WHERE j.id = ANY (v_ids)
            ORDER BY j.id
            FOR NO KEY UPDATE;
            WITH done AS (
                UPDATE jobs AS j SET
                    provider = CASE WHEN b.outputs IS NULL THEN j.provider ELSE b.provider END,
                    upstream_model = CASE WHEN b.outputs IS NULL THEN j.upstream_model
                        ELSE b.upstream_model END,
                    outputs = coalesce(b.outputs, j.outputs),
                    call_started_at = NULL,
                    status = 'COMPLETED',
                    step = 'done',
                    progress = 100,
                    credit_cost = b.charged,
                    completed_at = b.at_ms,
                    expires_at = b.expires_at,
                    webhook_status = b.webhook_status,
                    updated_at = b.at_ms,
                    lease_owner = NULL,
                    lease_token = NULL,
                    lease_expires_at = NULL
                FROM jsonb_to_recordset(p_batch) AS b(
                    id VARCHAR, token VARCHAR, at_ms BIGINT, charged BIGINT, expires_at BIGINT,
                    webhook_status VARCHAR, provider VARCHAR, upstream_model VARCHAR, outputs JSONB)
                WHERE j.id = ANY (v_ids) AND j.id = b.id AND j.lease_token = b.token
                RETURNING j
            )
            SELECT array_agg(done.j ORDER BY (done.j).id) INTO v_done FROM done;
            IF v_done IS NULL THEN
                RETURN;
            END IF;
            -- Each job's events in the order complete_job writes them, the jobs in id order.
            INSERT INTO job_events (job_id, at, kind, data)
            SELECT e.job_id, e.at, e.kind, e.data FROM (
                SELECT b.id AS job_id, b.at_ms AS at, 'stored' AS kind,
                    jsonb_build_object('outputs', jsonb_array_length(b.outputs)) AS data, 0 AS n
                FROM jsonb_to_recordset(p_batch) AS b(id VARCHAR, at_ms BIGINT, outputs JSONB)
                WHERE b.outputs IS NOT NULL AND b.id IN (SELECT d.id FROM unnest(v_done) AS d)
                UNION ALL
                SELECT d.id, d.completed_at, 'completed', 'null'::jsonb, 1 FROM unnest(v_done) AS d
            ) AS e
            ORDER BY e.job_id, e.n;
            -- The balance as 0016 reads it: shared, after every change in flight commits.
            WITH settled AS MATERIALIZED (
                SELECT a.id, a.credits FROM accounts AS a
                WHERE a.id IN (
                    SELECT d.account_id FROM unnest(v_done) AS d WHERE d.credit_cost <> 0
                )
                ORDER BY a.id
                FOR SHARE
            )
            INSERT INTO ledger_entries
                (account_id, job_id, kind, amount, balance_after, note, created_at)
            SELECT d.account_id, d.id, 'capture', 0, coalesce(s.credits, 0),
                'charged ' || d.credit_cost, d.completed_at
            FROM unnest(v_done) AS d LEFT JOIN settled AS s ON s.id = d.account_id
            WHERE d.credit_cost <> 0
            ORDER BY d.id;
            INSERT INTO webhook_deliveries
                (id, job_id, account_id, event, url, status, attempts, run_at, created_at)
            SELECT b.delivery_id, d.id, d.account_id, 'completed', d.webhook_url, 'pending', 0,
                d.completed_at, d.completed_at
            FROM unnest(v_done) AS d
            JOIN jsonb_to_recordset(p_batch) AS b(id VARCHAR, delivery_id VARCHAR) ON b.id = d.id
            WHERE b.delivery_id IS NOT NULL
            ORDER BY d.id;
            PERFORM pg_notify(b.channel, d.id)
            FROM unnest(v_done) AS d
            JOIN jsonb_to_recordset(p_batch) AS b(id VARCHAR, channel TEXT) ON b.id = d.id
            WHERE b.channel IS NOT NULL
            ORDER BY d.id;
            RETURN QUERY SELECT * FROM unnest(v_done);
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
    op.execute(str(earlier("0022_postgres_complete_jobs_writes_each_table_once.py").COMPLETE_JOBS))
