"""Prometheus metrics, on a registry of the runtime's own (no import-time globals).

Counters are bumped where things happen (job outcomes, retries, lease losses, upstream errors,
webhook attempts); queue depth is read from the database when ``/metrics`` is scraped, so every
process reports the same shared queue.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from imagegate.observability.logging import dropped_log_records

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs_submitted = Counter(
            "imagegate_jobs_submitted", "Jobs accepted", ["model"], registry=self.registry
        )
        self.jobs_finished = Counter(
            "imagegate_jobs_finished",
            "Jobs that reached a final state",
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
        self.queue_due = Gauge(
            "imagegate_queue_due", "Jobs due now, per step", ["step"], registry=self.registry
        )

        self.log_records_dropped = Gauge(
            "imagegate_log_records_dropped",
            "Log records this process dropped because its log queue was full",
            registry=self.registry,
        )

    def render(self, due: dict[str, int]) -> bytes:
        self.log_records_dropped.set(dropped_log_records())
        for step in ("submit", "poll", "fetch", "cancel"):
            self.queue_due.labels(step=step).set(due.get(step, 0))
        return generate_latest(self.registry)
