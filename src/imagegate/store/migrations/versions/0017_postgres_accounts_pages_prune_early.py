"""PostgreSQL: an account row's old versions are pruned as soon as they are dead

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Every submit batch and refund updates its account's row, and every insert that references an
account (a job, a ledger row, a webhook delivery) checks its foreign key with a ``FOR KEY
SHARE`` lock on that row; completions read it ``FOR SHARE`` (0016). With lockers and an updater
at once, each old version of the row ends with a MultiXact as its ``xmax``. The updates are HOT,
so the versions pile up on the row's page, chained, until the page is nearly full (about 70
versions) and is pruned; every index fetch of the row (each foreign key check, each lock) walks
that chain from its root and looks up each version's MultiXact members. In the end-to-end
benchmark (one account, 2026-12-07 04:14 UTC) that walk was a third of PostgreSQL's CPU
(``GetMultiXactIdMembers`` under ``heap_hot_search_buffer``, perf).

A fill factor of 10 makes PostgreSQL prune a page of ``accounts`` whenever less than 90 % of it
is free, so a row's chain is a few versions long. The fill factor also leaves 90 % of a page
empty when accounts are inserted: a few accounts per page, on a table of one row per customer.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE accounts SET (fillfactor = 10)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE accounts RESET (fillfactor)")
