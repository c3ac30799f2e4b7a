"""PostgreSQL: each account's job counts kept in one counter row per session, not as changes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

0008's change log (one row appended per status change, folded by admission under the account's
lock, 0009) left dead rows behind every fold: each fold deletes the account's change rows and
inserts their sum, and the next fold's index scan walks every dead entry left since the last
vacuum. Autovacuum comes once a minute at best, so admission got slower between its visits
(five 8-second c32 submit rounds on one database fell from 35.5 % to 23.9 % of the anchor, with
58,275 dead rows in the table; a manual vacuum brought them back).

Now a status change adds to a counter row of the account's own for the session that makes it,
``account_job_count_slots (account_id, slot = pg_backend_pid())``, by an upsert:

- Two live sessions never share a pid, so a change only ever writes its own session's row: no
  change waits on another (the reason 0008 appended instead of keeping one row per account), and
  no two sessions updating several accounts' rows in one transaction can deadlock. A later
  backend that reuses a pid only continues its rows' sums.
- The update changes no indexed column and the table keeps most of each page free
  (``fillfactor = 10``), so each update is HOT: no new index entry, and the dead versions are
  pruned whenever a later statement reads the page, without vacuum.
- Admission (``lock_account_for_admission``, still after the account's ``FOR NO KEY UPDATE``)
  sums the account's rows. A row stays after its session ends; when an account has more than
  ``SLOTS_KEPT`` rows, admission folds the rows of sessions gone (their pid no longer among the
  server's backends) into its own session's row. A live session's row is left alone: its next
  change would only insert it again. A fold skips rows an unfinished transaction holds
  (``SKIP LOCKED``): a worker's completion locks its row and then waits for the account row
  admission holds, so waiting for it would deadlock. Folds are rare (sessions end when pools
  recycle connections or processes stop), so the dead entries they leave do not matter.

The counts mean what they meant: every committed change and the transaction's own, read after
the lock is granted (a volatile function takes a new snapshot per statement), so a submit that
inserted its job before taking the lock (``submit_job``, ``submit_jobs``) counts it.

``jobs`` is locked against writes before the sums are copied in and the trigger function
swapped, so no change falls between the two, in either direction; the triggers themselves stay.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SLOTS_KEPT = 32
"""An account's counter rows that admission sums without looking for sessions gone. One process
changes job statuses on up to 24 sessions (its 4 body threads and its pool of 10 + 10). Past
the bound, each admission reads the server's list of backends; with more live sessions than
this changing one account's jobs (several processes), that read is all a fold costs, since it
deletes no live session's row."""

# An UPDATE first: an upsert that finds the row locks it (a WAL record of its own) before it
# updates it, and the row is there for every change of a session but its first.
ADD_JOB_COUNTS = """
CREATE FUNCTION add_job_counts(p_account_id VARCHAR, p_queued INTEGER, p_processing INTEGER)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account_job_count_slots AS s
    SET queued = s.queued + p_queued, processing = s.processing + p_processing
    WHERE s.account_id = p_account_id AND s.slot = pg_backend_pid();
    IF NOT FOUND THEN
        INSERT INTO account_job_count_slots AS s (account_id, slot, queued, processing)
        VALUES (p_account_id, pg_backend_pid(), p_queued, p_processing)
        ON CONFLICT (account_id, slot) DO UPDATE
        SET queued = s.queued + EXCLUDED.queued, processing = s.processing + EXCLUDED.processing;
    END IF;
END
$$
"""

# Each change adds what the job now counts and takes what it counted; a job that stays with its
# account adds both to one row.
RECORD_IN_SLOTS = """
CREATE OR REPLACE FUNCTION record_job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_account_id VARCHAR;
    v_queued INTEGER := 0;
    v_processing INTEGER := 0;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN ('QUEUED', 'PROCESSING') THEN
        v_account_id := OLD.account_id;
        v_queued := -(OLD.status = 'QUEUED')::int;
        v_processing := -(OLD.status = 'PROCESSING')::int;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN ('QUEUED', 'PROCESSING') THEN
        IF v_account_id IS DISTINCT FROM NEW.account_id THEN
            IF v_account_id IS NOT NULL THEN
                PERFORM add_job_counts(v_account_id, v_queued, v_processing);
            END IF;
            v_account_id := NEW.account_id;
            v_queued := 0;
            v_processing := 0;
        END IF;
        v_queued := v_queued + (NEW.status = 'QUEUED')::int;
        v_processing := v_processing + (NEW.status = 'PROCESSING')::int;
    END IF;
    IF v_account_id IS NOT NULL THEN
        PERFORM add_job_counts(v_account_id, v_queued, v_processing);
    END IF;
    RETURN NULL;
END
$$
"""

LOCK_SUMMING_SLOTS = f"""
CREATE OR REPLACE FUNCTION lock_account_for_admission(
    p_account_id VARCHAR,
    OUT account accounts,
    OUT queued_jobs INTEGER,
    OUT processing_jobs INTEGER
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rows INTEGER;
    v_folded INTEGER;
    v_queued INTEGER;
    v_processing INTEGER;
BEGIN
    SELECT * INTO account FROM accounts WHERE id = p_account_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        queued_jobs := 0;
        processing_jobs := 0;
        RETURN;
    END IF;
    SELECT coalesce(sum(s.queued), 0), coalesce(sum(s.processing), 0), count(*)
    INTO queued_jobs, processing_jobs, v_rows
    FROM account_job_count_slots AS s WHERE s.account_id = p_account_id;
    IF v_rows > {SLOTS_KEPT} THEN
        -- Moves counts between rows, so the sums just read stay what they are.
        WITH folded AS (
            DELETE FROM account_job_count_slots AS s
            WHERE s.account_id = p_account_id AND s.slot IN (
                SELECT o.slot FROM account_job_count_slots AS o
                WHERE o.account_id = p_account_id AND o.slot <> pg_backend_pid()
                    AND o.slot NOT IN (
                        SELECT b.pid FROM pg_stat_get_activity(NULL) AS b
                        WHERE b.pid IS NOT NULL
                    )
                FOR UPDATE SKIP LOCKED
            )
            RETURNING s.queued, s.processing
        )
        SELECT count(*), sum(f.queued), sum(f.processing) INTO v_folded, v_queued, v_processing
        FROM folded AS f;
        IF v_folded > 0 THEN
            PERFORM add_job_counts(p_account_id, v_queued, v_processing);
        END IF;
    END IF;
END
$$
"""

# 0008's trigger function and 0009's admission, as they made them.
RECORD_AS_CHANGES = """
CREATE OR REPLACE FUNCTION record_job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
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

LOCK_FOLDING_CHANGES = """
CREATE OR REPLACE FUNCTION lock_account_for_admission(
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

NO_JOB_WRITES = "LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE"
"""Until this migration commits: every change committed before it is in the sums copied, and
every change after it runs the new trigger function (a writer that waited for the lock reads the
function anew)."""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NO_JOB_WRITES)
    op.execute(
        """
        CREATE TABLE account_job_count_slots (
            account_id VARCHAR(36) NOT NULL,
            slot INTEGER NOT NULL,
            queued INTEGER NOT NULL,
            processing INTEGER NOT NULL,
            PRIMARY KEY (account_id, slot)
        ) WITH (fillfactor = 10)
        """
    )
    # Slot 0 is no backend's pid: the first fold of the account takes it in.
    op.execute(
        """
        INSERT INTO account_job_count_slots (account_id, slot, queued, processing)
        SELECT account_id, 0, sum(queued), sum(processing) FROM account_job_count_changes
        GROUP BY account_id HAVING sum(queued) <> 0 OR sum(processing) <> 0
        """
    )
    op.execute(ADD_JOB_COUNTS)
    op.execute(RECORD_IN_SLOTS)
    op.execute(LOCK_SUMMING_SLOTS)
    op.execute("DROP TABLE account_job_count_changes")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NO_JOB_WRITES)
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
    op.execute(
        """
        INSERT INTO account_job_count_changes (account_id, queued, processing)
        SELECT account_id, sum(queued), sum(processing) FROM account_job_count_slots
        GROUP BY account_id HAVING sum(queued) <> 0 OR sum(processing) <> 0
        """
    )
    op.execute(RECORD_AS_CHANGES)
    op.execute(LOCK_FOLDING_CHANGES)
    op.execute("DROP FUNCTION add_job_counts(VARCHAR, INTEGER, INTEGER)")
    op.execute("DROP TABLE account_job_count_slots")
