"""The schema, as SQLAlchemy Core tables. Alembic migrations (``store/migrations``) create it.

Times are integer epoch milliseconds (``Millis``): SQLite has no time-zone-aware timestamp, and
integers compare and index the same way on both engines. The API renders them as ISO-8601.
The ``jobs`` table is also the work queue: ``step``/``run_at`` say when a job is due, and the
``lease_*`` columns say who holds it (see ``imagegate.queue.claims``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from imagegate.store.outputs import OutputList

__all__ = [
    "accounts",
    "api_keys",
    "idempotency_keys",
    "job_events",
    "jobs",
    "ledger_entries",
    "metadata",
    "provider_health",
    "provider_leases",
    "uploads",
    "webhook_attempts",
    "webhook_deliveries",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
Id = String(36)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("credits", BigInteger, nullable=False, server_default="0"),
    Column("webhook_secret", String(120)),
    Column("webhook_secret_previous", String(120)),
    Column("created_at", BigInteger, nullable=False),
    Column("max_concurrent_jobs", Integer),  # QUEUED + PROCESSING; NULL: no cap
    Column("max_daily_spend", BigInteger),  # credits per UTC day; NULL: no cap
    CheckConstraint("credits >= 0", name="credits_non_negative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("submit_rate", String(100)),  # `limits` notation, e.g. "60/minute"; NULL: default
    Column("read_rate", String(100)),
    Column("allowed_models", Json),  # list of model ids; NULL: every model
    CheckConstraint("kind IN ('live', 'test')", name="kind"),
    CheckConstraint("status IN ('active', 'inactive', 'revoked')", name="status"),
    Index(None, "account_id"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("job_id", Id),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("note", String(500)),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("kind IN ('grant', 'reserve', 'capture', 'refund')", name="kind"),
    Index(None, "account_id", "id"),
    Index(None, "job_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("api_key_id", Id, ForeignKey("api_keys.id", ondelete="SET NULL")),
    Column("model", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(16), nullable=False),
    Column("progress", Integer, nullable=False, server_default="0"),
    Column("prompt", Text, nullable=False),
    Column("input", Json, nullable=False),
    Column("params", Json, nullable=False),
    Column("action", Json),
    Column("parent_job_id", Id),
    Column("outputs_expected", Integer, nullable=False, server_default="1"),
    Column("sandbox", Boolean, nullable=False, server_default="0"),
    Column("credit_cost", BigInteger, nullable=False, server_default="0"),
    # Where it runs upstream.
    Column("provider", String(64)),
    Column("upstream_model", String(200)),
    Column("route_index", Integer, nullable=False, server_default="0"),
    Column("provider_task_id", String(500)),
    Column("provider_state", Json),
    # What came out.
    Column("outputs", OutputList),  # list[OutputRecord]
    Column("error", Text),
    Column("error_code", String(64)),
    # Webhooks.
    Column("webhook_url", Text),
    Column("webhook_events", Json),
    Column("webhook_status", String(16)),
    # Queue.
    Column("run_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(200)),
    Column("lease_token", Id),
    Column("lease_expires_at", BigInteger),
    Column("deadline_at", BigInteger, nullable=False),
    # Times.
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("completed_at", BigInteger),
    Column("expires_at", BigInteger),
    Column("expired", Boolean, nullable=False, server_default="0"),
    Column("retention_days", Integer),
    # A paid submit call in flight (set before it, cleared with the lease), and how many such
    # calls were cut off by a crash and submitted again (``queue.runner``).
    Column("call_started_at", BigInteger),
    Column("interrupted_calls", Integer, nullable=False, server_default="0"),
    CheckConstraint(
        "status IN ('QUEUED', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')", name="status"
    ),
    CheckConstraint("step IN ('submit', 'poll', 'fetch', 'cancel', 'done')", name="step"),
    CheckConstraint("credit_cost >= 0", name="credit_cost_non_negative"),
    Index("ix_jobs_due", "step", "run_at"),
    Index("ix_jobs_account_created", "account_id", "created_at", "id"),
    Index("ix_jobs_account_status", "account_id", "status"),
    Index("ix_jobs_retention", "expired", "expires_at"),
    # A worker's leased jobs (its heartbeat, its shutdown): only jobs in flight are indexed.
    Index(
        "ix_jobs_leased",
        "lease_owner",
        postgresql_where=text("lease_token IS NOT NULL"),
        sqlite_where=text("lease_token IS NOT NULL"),
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", Json),
    Index(None, "job_id", "id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # On PostgreSQL not a constraint since migration 0021: the job inserted with the key checks
    # the account.
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("job_id", Id, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "key"),
    Index(None, "expires_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_at", BigInteger, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_token", Id),
    Column("lease_expires_at", BigInteger),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_attempt_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    CheckConstraint("event IN ('progress', 'completed', 'failed')", name="event"),
    Index("ix_webhook_deliveries_due", "status", "run_at"),
    Index(None, "job_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "delivery_id", Id, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    ),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text),
    Column("next_attempt_at", BigInteger),
    Index(None, "job_id", "id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(300), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("byte_size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default="0"),
    Index(None, "deleted", "expires_at"),
)

provider_leases = Table(
    "provider_leases",
    metadata,
    Column("ticket", String(64), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("job_id", Id),
    Column("owner", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "provider", "expires_at"),
)
"""Concurrency caps shared by every worker: one row per call upstream in flight, counted against
its provider's ``max_concurrency``. A row outlives a dead holder only until ``expires_at``
(the call's timeout plus a margin), so a cap costs nothing while it is not used."""

provider_health = Table(
    "provider_health",
    metadata,
    Column("provider", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("open_until", BigInteger, nullable=False, server_default="0"),
    Column("cooldown_until", BigInteger, nullable=False, server_default="0"),
    Column("window_start", BigInteger, nullable=False, server_default="0"),
    Column("window_count", Integer, nullable=False, server_default="0"),
    Column("misconfigured", Text),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
)
"""What every worker knows about a provider: consecutive retryable failures and the circuit
they open, the cool-down a 429 asked for, the current rate-limit window, and whether our
credentials were refused (shown by ``/readyz``)."""
