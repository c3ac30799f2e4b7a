"""PostgreSQL: a worker takes a batch of provider leases in one statement

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07

A worker took its queued leases of a provider (``store.providers.take_leases``) in a
transaction of six round trips: ``BEGIN``, the provider's health row ``FOR UPDATE``, the
expired leases' ``DELETE``, their count, the ``INSERT`` and ``COMMIT``. It held the health row
through all of them, and under load the other workers' takes of the same provider waited
behind each trip of it (sampled in ``pg_stat_activity``: the taking session idle in its
transaction, waiting for its client, the other worker's take waiting for the row).
``take_provider_leases`` runs the same statements in the same order in one call, which a
worker sends alone (autocommit): the row is held only while the server runs them and commits.

The invariant is the one ``take_leases`` keeps: at most ``p_cap`` unexpired leases per
provider, counted under the health row's lock (each statement of a volatile function sees
what committed before it, so the count sees every lease taken before the lock was granted);
the leases fit in first come first served, in the order given, and their tickets are returned.
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

TAKE_PROVIDER_LEASES = """
        CREATE FUNCTION take_provider_leases(
            p_provider VARCHAR, p_cap INTEGER, p_owner VARCHAR, p_now BIGINT,
            p_tickets VARCHAR[], p_job_ids VARCHAR[], p_expires_at BIGINT[]
        ) RETURNS SETOF VARCHAR
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_room BIGINT;
        BEGIN
            PERFORM 1 FROM provider_health AS h WHERE h.provider = p_provider FOR UPDATE;
            DELETE FROM provider_leases AS l
            WHERE l.provider = p_provider AND l.expires_at < p_now;
            SELECT p_cap - count(*) INTO v_room
            FROM provider_leases AS l WHERE l.provider = p_provider;
            RETURN QUERY
            INSERT INTO provider_leases (ticket, provider, job_id, owner, expires_at)
            SELECT b.ticket, p_provider, b.job_id, p_owner, b.expires_at
            FROM unnest(p_tickets, p_job_ids, p_expires_at) WITH ORDINALITY
                AS b(ticket, job_id, expires_at, n)
            ORDER BY b.n
            LIMIT greatest(v_room, 0)
            RETURNING ticket;
        END
        $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TAKE_PROVIDER_LEASES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION take_provider_leases"
        "(VARCHAR, INTEGER, VARCHAR, BIGINT, VARCHAR[], VARCHAR[], BIGINT[])"
    )
