"""Optional OpenTelemetry traces of each job, from submit to webhook, across processes.

Off unless ``IMAGEGATE_TRACING`` is true, which needs the ``otel`` extra
(``pip install 'imagegate[otel]'``); imagegate never needs OpenTelemetry otherwise. Spans are
exported over OTLP/HTTP by a background thread, configured by the standard ``OTEL_*`` variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME`` …).

A job is one trace whose id *is* the job id (a UUID is 128 bits, like a trace id), under a
parent span derived from the job id too. So the API process that accepted the job, the workers
that ran each step and the process that delivered the webhook all add spans to the same trace
without passing any context between them: the job id, already in the database, is the context.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["JobTracing", "TracingUnavailable", "root_span_id", "trace_id_of"]


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the ``otel`` extra is not installed."""


def trace_id_of(job_id: str) -> int:
    """The trace id of a job: its UUID's 128 bits."""
    return uuid.UUID(job_id).int


def root_span_id(job_id: str) -> int:
    """The id of the job's (never exported) parent span, the same in every process."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") or 1


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


class JobTracing:
    """Spans of a job's life; every method is a no-op when tracing is off."""

    def __init__(self, provider: Any | None = None) -> None:
        """``provider`` is an OpenTelemetry ``TracerProvider``; None turns tracing off."""
        self._tracer = provider.get_tracer("imagegate") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self, name: str, job_id: str, **attributes: str | int
    ) -> contextlib.AbstractContextManager[None]:
        """A span named ``name`` in ``job_id``'s trace, around the block. Off, one shared
        context that does nothing (every submit enters one)."""
        if self._tracer is None:
            return _NO_SPAN
        return self._span(name, job_id, attributes)

    @contextlib.contextmanager
    def _span(self, name: str, job_id: str, attributes: dict[str, str | int]) -> Iterator[None]:
        assert self._tracer is not None
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        root = SpanContext(
            trace_id=trace_id_of(job_id),
            span_id=root_span_id(job_id),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        parent = trace.set_span_in_context(NonRecordingSpan(root))
        with self._tracer.start_as_current_span(
            name, context=parent, attributes={"imagegate.job_id": job_id, **attributes}
        ):
            yield

    @classmethod
    def from_settings(cls, enabled: bool) -> JobTracing:
        """Off, or exporting over OTLP/HTTP; raises ``TracingUnavailable`` without the extra."""
        if not enabled:
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise TracingUnavailable(
                "IMAGEGATE_TRACING is true but OpenTelemetry is not installed: "
                "pip install 'imagegate[otel]', or unset IMAGEGATE_TRACING"
            ) from None
        provider = TracerProvider(resource=Resource.create({"service.name": "imagegate"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)
