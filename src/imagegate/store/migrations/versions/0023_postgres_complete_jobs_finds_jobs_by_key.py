"""PostgreSQL: ``complete_jobs`` finds its batch's jobs by their keys

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

``complete_jobs`` (0022) locked and updated its batch's jobs by joining ``jobs`` to the batch's
rows (``jsonb_to_recordset``), which the planner estimates at 100 rows whatever the batch holds:
on a table of a few thousand jobs it chose to read the whole table and hash the batch, once to
lock and once to update, for every batch. The ids are now
gathered first and each statement asks for ``id = ANY`` of them, which the primary key answers.
The rows written, their order and the order of the locks are unchanged.
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import changed, earlier

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# (0022's text, this migration's), each found once.
CHANGES = (
    (
        "            v_done jobs[];\n",
        "            v_ids VARCHAR[];\n            v_done jobs[];\n",
    ),
    (
        "            PERFORM 1 FROM jobs AS j\n",
        "            -- The batch's jobs are found by their keys (v_ids): joined to the batch's"
        " rows\n"
        "            -- instead, the planner takes the batch for 100 rows and reads the whole"
        " table.\n"
        "            SELECT array_agg(b.id) INTO v_ids"
        " FROM jsonb_to_recordset(p_batch) AS b(id VARCHAR);\n"
        "            PERFORM 1 FROM jobs AS j\n",
    ),
    (
        "            WHERE j.id IN"
        " (SELECT b.id FROM jsonb_to_recordset(p_batch) AS b(id VARCHAR))\n",
        "            WHERE j.id = ANY (v_ids)\n",
    ),
    (
        "                WHERE j.id = b.id AND j.lease_token = b.token\n",
        "                WHERE j.id = ANY (v_ids) AND j.id = b.id AND j.lease_token = b.token\n",
    ),
)


def _complete_jobs_of_0022() -> str:
    return str(earlier("0022_postgres_complete_jobs_writes_each_table_once.py").COMPLETE_JOBS)


def complete_jobs() -> str:
    """This migration's ``complete_jobs``: 0022's with the batch's jobs found by key."""
    return changed(_complete_jobs_of_0022(), CHANGES)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(complete_jobs())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_complete_jobs_of_0022())
