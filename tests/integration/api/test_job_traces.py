"""With the ``otel`` extra, a job is one OpenTelemetry trace from submit to webhook: the API
process and the worker process export their spans separately, and they join by the job id."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pytest_httpserver import HTTPServer

from imagegate.observability.tracing import JobTracing, root_span_id, trace_id_of
from imagegate.runtime import build_runtime
from tests.conftest import make_settings
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}


def exporting() -> tuple[JobTracing, InMemorySpanExporter]:
    """A process's tracing, exporting into memory (each process has its own provider)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return JobTracing(provider), exporter


async def test_a_job_is_one_trace_across_the_api_and_the_worker(
    database_url: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    api_tracing, api_spans = exporting()
    worker_tracing, worker_spans = exporting()
    data = tmp_path / "data"
    async with open_gateway(database_url, data, routes=SANDBOX_ROUTES, tracing=api_tracing) as gw:
        response = await gw.submit(
            {**BODY, "webhookUrl": httpserver.url_for("/hook")}, key=gw.live_key
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["jobId"]

        # Another process: its own runtime and tracer, sharing only the database.
        worker = build_runtime(
            make_settings(database_url, data, routes=SANDBOX_ROUTES), tracing=worker_tracing
        )
        try:
            await worker.worker(concurrency=2).drain()
            sender = worker.webhook_sender()
            try:
                await sender.drain()
            finally:
                await sender.aclose()
        finally:
            await worker.aclose()
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"
    assert len(httpserver.log) == 1

    accepted = api_spans.get_finished_spans()
    processed = worker_spans.get_finished_spans()
    assert [span.name for span in accepted] == ["job.accept"]
    names = [span.name for span in processed]
    assert "job.submit" in names and names[-1] == "webhook.deliver", names
    for span in (*accepted, *processed):
        assert span.context is not None and span.parent is not None
        assert span.context.trace_id == trace_id_of(job_id), span.name
        assert span.parent.span_id == root_span_id(job_id), span.name
        assert span.attributes is not None and span.attributes["imagegate.job_id"] == job_id
    assert f"{trace_id_of(job_id):032x}" == job_id.replace("-", "")  # find it by the job id


async def test_tracing_is_off_by_default(database_url: str, tmp_path: Path) -> None:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        assert not gw.runtime.metrics.tracing.enabled
        response = await gw.submit(BODY, key=gw.live_key)
        assert response.status_code == 202
