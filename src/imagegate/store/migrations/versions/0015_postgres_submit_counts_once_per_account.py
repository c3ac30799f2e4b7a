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

from imagegate.store.migrations import changed, earlier

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

# (0012's text, this migration's), each found once in 0012's function.
CHANGES = (
    (
        "    v_balance BIGINT;\nBEGIN\n",
        """    v_balance BIGINT;
    v_adding_for VARCHAR;
    v_adding INTEGER := 0;
BEGIN
""",
    ),
    (
        "    FOR s, v_item IN\n",
        """    -- v_adding: jobs of v_adding_for admitted and not yet in its counter row. The insert
    -- trigger leaves this batch's jobs to it, and they are added at once when the batch moves
    -- to another account, before the account is counted again, and at the end: outside the
    -- submits' own blocks, so a later refusal does not undo them.
    PERFORM set_config('imagegate.counted_by_batch', 'on', true);
    FOR s, v_item IN
""",
    ),
    (
        "        v_job_id := s->>'id';\n",
        """        IF v_adding > 0
            AND (v_adding_for IS DISTINCT FROM v_account_id OR v_counted_for IS NULL) THEN
            PERFORM add_job_counts(v_adding_for, v_adding, 0);
            v_adding := 0;
        END IF;
        v_job_id := s->>'id';
""",
    ),
    (
        "                    v_queued := v_lock.queued_jobs;\n",
        "                    v_queued := v_lock.queued_jobs + 1;  -- this job, not counted yet\n",
    ),
    (
        "                outcome := coalesce(outcome, 'accepted');\n",
        """                outcome := coalesce(outcome, 'accepted');
                IF outcome = 'accepted' THEN
                    v_adding_for := v_account_id;
                    v_adding := v_adding + 1;
                END IF;
""",
    ),
    (
        "    END LOOP;\nEND\n",
        """    END LOOP;
    IF v_adding > 0 THEN
        PERFORM add_job_counts(v_adding_for, v_adding, 0);
    END IF;
    PERFORM set_config('imagegate.counted_by_batch', '', true);
END
""",
    ),
)


def _submit_jobs() -> str:
    """This migration's ``submit_jobs``: 0012's with the batch adding its jobs' counts."""
    return changed(str(earlier("0012_postgres_submit_many_counts_once.py").SUBMIT_JOBS), CHANGES)


SUBMIT_JOBS = _submit_jobs()


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
