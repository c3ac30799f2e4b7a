"""PostgreSQL: a batch of submits writes its admitted jobs in one insert

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

``submit_jobs`` inserted each submit's job row as it went, one ``INSERT`` statement per submit,
undone with a refused submit's other writes. Each of those statements starts an executor of its
own, and each start reads the table's three ``CHECK`` constraints and the count trigger's
``WHEN`` from their stored text and plans them again (perf on the backend, 2026-12-07 15:10 UTC:
executor start 14 %, the constraints' and the trigger's text parsed 8 % of a batch's CPU). The
jobs a batch admits are now gathered and inserted at its end in one ``INSERT … SELECT``, before
their ``queued`` events (0020). Backend CPU per submit in batches of 16 of one account, six
alternating rounds of 300 batches (15:14 UTC, load average 9–13): median 134 → 94 µs without an
Idempotency-Key, 158 → 114 µs with one.

What a submit decides does not change: admission never read the job's own row (the insert
trigger leaves a batch's jobs to the batch, 0015, and the counts add one for the job), and the
daily spend cap, which summed the account's rows with the job's own and took its cost back off,
now adds the cost of the jobs the batch admitted for the account before it. A job row that
fails to insert (which a submit the gateway built cannot make: its account and key exist and
are never deleted, its id is new) now fails the whole statement, as any failure of the
statement did: every caller of the batch gets the error and nothing of the batch is written,
where before that one submit came back to run again alone.
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import changed, earlier

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# (0020's text, this migration's), each found once.
CHANGES = (
    (
        "    v_queued_costs BIGINT[] := '{}';\n",
        """    v_queued_costs BIGINT[] := '{}';
    v_admitted JSONB[] := '{}';
    v_spent_for VARCHAR;
    v_spent BIGINT := 0;
""",
    ),
    (
        """            IF outcome IS NULL THEN
                INSERT INTO jobs (
                    id, account_id, api_key_id, model, status, step, progress, prompt, input,
                    params, outputs_expected, sandbox, credit_cost, webhook_url, webhook_events,
                    retention_days, run_at, created_at, updated_at, deadline_at
                ) VALUES (
                    v_job_id, v_account_id, s->>'api_key_id', s->>'model', 'QUEUED', 'submit', 0,
                    s->>'prompt', s->'input', s->'params', (s->>'outputs_expected')::INTEGER,
                    (s->>'sandbox')::BOOLEAN, v_cost, s->>'webhook_url', s->'webhook_events',
                    (s->>'retention_days')::INTEGER, v_now, v_now, v_now,
                    (s->>'deadline_at')::BIGINT
                );
                -- Admitted last, so the account is locked from its first submit of the batch.
""",
        """            IF outcome IS NULL THEN
                -- v_spent: the credits of the jobs admitted for this account earlier in the
                -- batch, not inserted yet.
                IF v_spent_for IS DISTINCT FROM v_account_id THEN
                    v_spent_for := v_account_id;
                    v_spent := 0;
                END IF;
""",
    ),
    (
        "                    SELECT coalesce(sum(j.credit_cost), 0) - v_cost INTO counted\n",
        "                    SELECT coalesce(sum(j.credit_cost), 0) + v_spent INTO counted\n",
    ),
    (
        "                    v_queued_costs := v_queued_costs || v_cost;\n",
        """                    v_queued_costs := v_queued_costs || v_cost;
                    v_admitted := array_append(v_admitted, s);
                    v_spent := v_spent + v_cost;
""",
    ),
    (
        """    -- The admitted jobs' events: after the loop, so a refusal has none to undo.
    IF cardinality(v_queued_ids) > 0 THEN
""",
        """    -- The admitted jobs and their events: after the loop, so a refusal has none to undo,
    -- and one statement each, whose executor reads the constraints and triggers once.
    IF cardinality(v_queued_ids) > 0 THEN
        INSERT INTO jobs (
            id, account_id, api_key_id, model, status, step, progress, prompt, input,
            params, outputs_expected, sandbox, credit_cost, webhook_url, webhook_events,
            retention_days, run_at, created_at, updated_at, deadline_at
        )
        SELECT j->>'id', j->>'account_id', j->>'api_key_id', j->>'model', 'QUEUED', 'submit', 0,
            j->>'prompt', j->'input', j->'params', (j->>'outputs_expected')::INTEGER,
            (j->>'sandbox')::BOOLEAN, (j->>'credit_cost')::BIGINT, j->>'webhook_url',
            j->'webhook_events', (j->>'retention_days')::INTEGER, (j->>'created_at')::BIGINT,
            (j->>'created_at')::BIGINT, (j->>'created_at')::BIGINT, (j->>'deadline_at')::BIGINT
        FROM unnest(v_admitted) AS a(j);
""",
    ),
)


def _submit_jobs_of_0020() -> str:
    return str(earlier("0020_postgres_submit_writes_a_batchs_events_at_once.py").submit_jobs())


def submit_jobs() -> str:
    """This migration's ``submit_jobs``: 0020's with the admitted jobs inserted at once."""
    return changed(_submit_jobs_of_0020(), CHANGES)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(submit_jobs())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_submit_jobs_of_0020())
