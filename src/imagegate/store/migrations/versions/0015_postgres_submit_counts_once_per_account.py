"""PostgreSQL: a batch of submits adds its jobs to its counter row once per account

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Each job a submit inserts fired the insert trigger of 0008, which (since 0014) calls
``add_job_counts`` and updates the session's counter row: a trigger call, a function call and
an UPDATE per job. In ``submit_jobs`` that was 23 % of a batch's server time (backend CPU per
batch of 32 submits of one account: 2.85 ms, 2.2 ms with the trigger off; 2026-12-07 02:34 UTC).
A batch knows what it admits, so it now adds its jobs to its row itself, once per account:

- ``submit_jobs`` sets ``imagegate.counted_by_batch`` for its transaction, and the insert
  trigger's ``WHEN`` skips while it is on: a setting read per row, where the trigger was a call.
  The function clears it before it returns, so another insert later in the same transaction
  is counted by the trigger as before.
- The jobs admitted for an account are added when the batch moves to another account, before
  it counts the same account again (after a refusal gave its lock back), and at the end. Those
  adds run outside each submit's own block, so a refusal that undoes its own writes does not
  undo them.
- The counts mean what they meant: the account's rows, summed under its lock, now lack this
  job, so the first submit of an account adds one for it (as the trigger had before the lock).

Updates and deletes of jobs (claims, completions, cancels) are counted by the triggers as before.
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import earlier

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COUNTED = "('QUEUED', 'PROCESSING')"

INSERT_TRIGGER_SKIPPING_BATCHES = f"""
CREATE TRIGGER job_count_changes_insert AFTER INSERT ON jobs FOR EACH ROW
WHEN (
    NEW.status IN {COUNTED}
    AND current_setting('imagegate.counted_by_batch', true) IS DISTINCT FROM 'on'
)
EXECUTE FUNCTION record_job_count_change()
"""

INSERT_TRIGGER = f"""
CREATE TRIGGER job_count_changes_insert AFTER INSERT ON jobs FOR EACH ROW
WHEN (NEW.status IN {COUNTED}) EXECUTE FUNCTION record_job_count_change()
"""

SUBMIT_JOBS = """CREATE OR REPLACE FUNCTION submit_jobs(
    p_submits JSONB,
    OUT item INTEGER,
    OUT outcome TEXT,
    OUT job_id VARCHAR,
    OUT status VARCHAR,
    OUT counted BIGINT,
    OUT cap BIGINT
) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s JSONB;
    v_item BIGINT;
    v_account_id VARCHAR;
    v_job_id VARCHAR;
    v_key VARCHAR;
    v_cost BIGINT;
    v_now BIGINT;
    v_fingerprint VARCHAR;
    v_counted_for VARCHAR;
    v_lock RECORD;
    v_account accounts;
    v_queued INTEGER;
    v_processing INTEGER;
    v_balance BIGINT;
    v_adding_for VARCHAR;
    v_adding INTEGER := 0;
BEGIN
    -- v_counted_for: the account whose lock this transaction holds and whose jobs v_queued and
    -- v_processing count (this batch's admitted ones included); NULL when none.
    -- v_adding: jobs of v_adding_for admitted and not yet in its counter row. The insert
    -- trigger leaves this batch's jobs to it, and they are added at once when the batch moves
    -- to another account, before the account is counted again, and at the end: outside the
    -- submits' own blocks, so a later refusal does not undo them.
    PERFORM set_config('imagegate.counted_by_batch', 'on', true);
    FOR s, v_item IN
        SELECT e.value, e.ordinality
        FROM jsonb_array_elements(p_submits) WITH ORDINALITY AS e
        ORDER BY e.value->>'account_id', e.ordinality
    LOOP
        item := v_item - 1;
        v_account_id := s->>'account_id';
        IF v_adding > 0
            AND (v_adding_for IS DISTINCT FROM v_account_id OR v_counted_for IS NULL) THEN
            PERFORM add_job_counts(v_adding_for, v_adding, 0);
            v_adding := 0;
        END IF;
        v_job_id := s->>'id';
        v_key := s->>'key';
        v_cost := (s->>'credit_cost')::BIGINT;
        v_now := (s->>'created_at')::BIGINT;
        job_id := v_job_id;
        status := 'QUEUED';
        counted := NULL;
        cap := NULL;
        outcome := NULL;
        BEGIN
            IF v_key IS NOT NULL THEN
                SELECT k.fingerprint, k.job_id INTO v_fingerprint, job_id
                FROM idempotency_keys AS k
                WHERE k.account_id = v_account_id AND k.key = v_key AND k.expires_at > v_now;
                IF FOUND THEN
                    IF v_fingerprint <> s->>'fingerprint' THEN
                        outcome := 'conflict';
                    ELSE
                        outcome := 'replayed';
                        SELECT j.status INTO status FROM jobs AS j WHERE j.id = job_id;
                        status := coalesce(status, 'QUEUED');
                    END IF;
                ELSE
                    job_id := v_job_id;
                    DELETE FROM idempotency_keys AS k
                    WHERE k.account_id = v_account_id AND k.key = v_key AND k.expires_at <= v_now;
                    INSERT INTO idempotency_keys
                        (account_id, key, fingerprint, job_id, created_at, expires_at)
                    VALUES (v_account_id, v_key, s->>'fingerprint', v_job_id, v_now,
                            (s->>'key_expires_at')::BIGINT);
                END IF;
            END IF;
            IF outcome IS NULL THEN
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
                INSERT INTO job_events (job_id, at, kind, data)
                VALUES (v_job_id, v_now, 'queued', jsonb_build_object('cost', v_cost));
                NOTIFY imagegate_jobs;
                -- Admitted last, so the account is locked from its first submit of the batch.
                IF v_counted_for IS DISTINCT FROM v_account_id THEN
                    SELECT * INTO v_lock FROM lock_account_for_admission(v_account_id);
                    v_account := v_lock.account;
                    v_queued := v_lock.queued_jobs + 1;  -- this job, not counted yet
                    v_processing := v_lock.processing_jobs;
                    v_counted_for := CASE WHEN v_account.id IS NOT NULL THEN v_account_id END;
                ELSE
                    v_queued := v_queued + 1;  -- this job
                END IF;
                -- The counts include this job.
                IF v_queued - 1 >= (s->>'max_queued')::INTEGER THEN
                    outcome := 'queued_cap';
                    counted := v_queued - 1;
                ELSIF v_account.id IS NULL THEN
                    outcome := 'accepted';
                ELSIF v_account.max_concurrent_jobs IS NOT NULL
                    AND v_queued - 1 + v_processing >= v_account.max_concurrent_jobs THEN
                    outcome := 'concurrent_cap';
                    counted := v_queued - 1 + v_processing;
                    cap := v_account.max_concurrent_jobs;
                ELSIF v_cost <> 0 AND v_account.max_daily_spend IS NOT NULL THEN
                    SELECT coalesce(sum(j.credit_cost), 0) - v_cost INTO counted
                    FROM jobs AS j
                    WHERE j.account_id = v_account_id
                        AND j.created_at >= (s->>'day_start')::BIGINT
                        AND j.status NOT IN ('FAILED', 'CANCELLED');
                    IF counted + v_cost > v_account.max_daily_spend THEN
                        outcome := 'daily_cap';
                        cap := v_account.max_daily_spend;
                    ELSE
                        counted := NULL;
                    END IF;
                END IF;
                IF outcome IS NULL AND v_cost <> 0 THEN
                    UPDATE accounts AS a SET credits = a.credits - v_cost
                    WHERE a.id = v_account_id AND a.credits >= v_cost
                    RETURNING a.credits INTO v_balance;
                    IF FOUND THEN
                        INSERT INTO ledger_entries
                            (account_id, job_id, kind, amount, balance_after, note, created_at)
                        VALUES (v_account_id, v_job_id, 'reserve', -v_cost, v_balance, NULL,
                                v_now);
                    ELSE
                        outcome := 'credits';
                        SELECT a.credits INTO counted FROM accounts AS a WHERE a.id = v_account_id;
                    END IF;
                END IF;
                outcome := coalesce(outcome, 'accepted');
                IF outcome = 'accepted' THEN
                    v_adding_for := v_account_id;
                    v_adding := v_adding + 1;
                END IF;
            END IF;
            IF outcome NOT IN ('accepted', 'replayed') THEN
                -- Undo this submit's writes (and a lock it took); the outcome stays set.
                RAISE EXCEPTION USING ERRCODE = 'IGREF';
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'IGREF' THEN
                v_counted_for := NULL;
            WHEN OTHERS THEN
                outcome := 'retry';
                job_id := NULL;
                status := NULL;
                counted := NULL;
                cap := NULL;
                v_counted_for := NULL;
        END;
        RETURN NEXT;
    END LOOP;
    IF v_adding > 0 THEN
        PERFORM add_job_counts(v_adding_for, v_adding, 0);
    END IF;
    PERFORM set_config('imagegate.counted_by_batch', '', true);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # One transaction: no insert falls between the two triggers, nor runs the new trigger
    # with the old function.
    op.execute("DROP TRIGGER job_count_changes_insert ON jobs")
    op.execute(INSERT_TRIGGER_SKIPPING_BATCHES)
    op.execute(SUBMIT_JOBS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER job_count_changes_insert ON jobs")
    op.execute(INSERT_TRIGGER)
    # 0012's function, as 0012 made it.
    earlier("0012_postgres_submit_many_counts_once.py").upgrade()
