"""Prometheus metrics, on registries of the runtime's own (no import-time globals).

Two kinds, so that several processes add up correctly:

- **Process counters** (``Metrics.registry``): what this process did — HTTP requests by route
  and status, upstream calls by provider with their latency, retries, failovers, lease losses,
  webhook attempts. Each API process serves its own on ``/metrics``, each ``imagegate worker``
  on ``IMAGEGATE_WORKER_METRICS_PORT``; summing a counter over every process gives the cluster's.
- **Cluster gauges** (``Metrics.cluster_registry``): read from the shared database — jobs by
  status, model and provider, the queue's depth and its oldest queued job, credits captured and
  refunded, webhook deliveries by outcome. Every API process reports the same values (cached for
  ``CLUSTER_TTL_SECONDS``), so they are aggregated with ``max``, never summed. Workers do not
  serve them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from imagegate.observability.logging import dropped_log_records
from imagegate.observability.tracing import JobTracing

__all__ = ["CLUSTER_TTL_SECONDS", "NO_PROVIDER", "ClusterFigures", "Metrics"]

CLUSTER_TTL_SECONDS = 3.0
"""How long an API process reuses the cluster figures it read (one query per scrape at most)."""

NO_PROVIDER = "none"
"""The ``provider`` label of a job that ended before any provider took it."""

QUEUE_STEPS = ("submit", "poll", "fetch", "cancel")

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upstream calls: a poll answers in tens of milliseconds, a synchronous vendor in minutes."""


@dataclass(frozen=True)
class ClusterFigures:
    """What the database says about the whole deployment at one moment."""

    jobs: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """(status, model, provider) → jobs; provider ``NO_PROVIDER`` when none took the job."""
    due: Mapping[str, int] = field(default_factory=dict)
    """step → jobs due now."""
    oldest_queued_seconds: float = 0.0
    """Age of the oldest job still QUEUED (0 when none is)."""
    credits_captured: int = 0
    credits_refunded: int = 0
    webhook_deliveries: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(event, status) → deliveries."""


class Metrics:
    """The process's telemetry: Prometheus metrics, and the job traces (``tracing``, off unless
    ``IMAGEGATE_TRACING``) that travel with them to every component that counts."""

    def __init__(self) -> None:
        self.tracing = JobTracing()
        self.registry = CollectorRegistry()
        self.jobs_submitted = Counter(
            "imagegate_jobs_submitted", "Jobs accepted", ["model"], registry=self.registry
        )
        self.jobs_finished = Counter(
            "imagegate_jobs_finished",
            "Jobs this process brought to a final state",
            ["model", "status", "provider"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "imagegate_failovers",
            "Jobs moved to their next route after a retryable failure",
            ["provider"],
            registry=self.registry,
        )
        self.deferrals = Counter(
            "imagegate_deferrals",
            "Jobs put back because their provider was busy (caps, rate limit, cool-down, circuit)",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.job_retries = Counter(
            "imagegate_job_retries",
            "Transient failures retried",
            ["provider"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "imagegate_upstream_errors",
            "Upstream failures by kind (code)",
            ["provider", "code"],
            registry=self.registry,
        )
        self.upstream_calls = Histogram(
            "imagegate_upstream_call_seconds",
            "Upstream calls (submit, poll) by provider and outcome (ok or the error code)",
            ["provider", "call", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.direct_jobs = Counter(
            "imagegate_direct_jobs",
            "/v1 jobs run in the request's own task, by outcome: answered from the step that"
            " completed them (completed), or left to the queue and waited for (queued)",
            ["outcome"],
            registry=self.registry,
        )
        self.lease_losses = Counter(
            "imagegate_lease_losses", "Steps whose lease was lost", registry=self.registry
        )
        self.interrupted_calls = Counter(
            "imagegate_interrupted_calls",
            "Paid upstream calls cut off by a crash before their answer, by what followed",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "imagegate_webhook_attempts", "Webhook attempts", ["outcome"], registry=self.registry
        )
        self.http_requests = Counter(
            "imagegate_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.log_records_dropped = Gauge(
            "imagegate_log_records_dropped",
            "Log records this process dropped because its log queue was full",
            registry=self.registry,
        )
        self.log_records_dropped.set_function(dropped_log_records)

        self.cluster_registry = CollectorRegistry()
        self.jobs = Gauge(
            "imagegate_jobs",
            "Jobs in the database by status, model and provider (cluster-wide)",
            ["status", "model", "provider"],
            registry=self.cluster_registry,
        )
        self.queue_due = Gauge(
            "imagegate_queue_due",
            "Jobs due now, per step (cluster-wide)",
            ["step"],
            registry=self.cluster_registry,
        )
        self.queue_oldest = Gauge(
            "imagegate_queue_oldest_queued_seconds",
            "Age of the oldest QUEUED job, 0 when none waits (cluster-wide)",
            registry=self.cluster_registry,
        )
        self.credits_captured = Gauge(
            "imagegate_credits_captured",
            "Credits charged for completed jobs (cluster-wide, from the ledger)",
            registry=self.cluster_registry,
        )
        self.credits_refunded = Gauge(
            "imagegate_credits_refunded",
            "Credits given back for failed or cancelled jobs (cluster-wide, from the ledger)",
            registry=self.cluster_registry,
        )
        self.webhook_deliveries = Gauge(
            "imagegate_webhook_deliveries",
            "Webhook deliveries by event and outcome (cluster-wide)",
            ["event", "status"],
            registry=self.cluster_registry,
        )
        self.cluster_read_at: float | None = None
        """``time.monotonic()`` when the cluster figures were last read; None before."""

    def cluster_stale(self, now: float) -> bool:
        """Whether the cluster figures are older than ``CLUSTER_TTL_SECONDS`` (or never read)."""
        return self.cluster_read_at is None or now - self.cluster_read_at >= CLUSTER_TTL_SECONDS

    def set_cluster(self, figures: ClusterFigures, read_at: float) -> None:
        """Replace every cluster gauge with ``figures`` (label sets that vanished go too)."""
        self.jobs.clear()
        for (status, model, provider), count in figures.jobs.items():
            self.jobs.labels(status=status, model=model, provider=provider).set(count)
        for step in QUEUE_STEPS:
            self.queue_due.labels(step=step).set(figures.due.get(step, 0))
        self.queue_oldest.set(figures.oldest_queued_seconds)
        self.credits_captured.set(figures.credits_captured)
        self.credits_refunded.set(figures.credits_refunded)
        self.webhook_deliveries.clear()
        for (event, status), count in figures.webhook_deliveries.items():
            self.webhook_deliveries.labels(event=event, status=status).set(count)
        self.cluster_read_at = read_at

    def render(self, *, cluster: bool) -> bytes:
        """The exposition text: this process's counters, then (API processes) the cluster's."""
        text = generate_latest(self.registry)
        return text + generate_latest(self.cluster_registry) if cluster else text
