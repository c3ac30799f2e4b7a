"""``/metrics`` on both engines: the cluster figures read from the database (jobs by status,
model and provider, credits, webhook deliveries, the queue), cached for a few seconds; HTTP
requests counted by route template, never by path. Several processes:
``tests/acceptance/test_metrics_across_processes.py``."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from imagegate.observability.metrics import CLUSTER_TTL_SECONDS
from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(gw: Gateway) -> Samples:
    response = await gw.http.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_cluster_figures_come_from_the_database(gateway: Gateway) -> None:
    empty = await scrape(gateway)
    assert value(empty, "imagegate_credits_captured") == 0
    assert value(empty, "imagegate_queue_due", step="submit") == 0

    done = await gateway.submit(BODY, key=gateway.live_key)
    failed = await gateway.submit({**BODY, "prompt": "x [[fail:rejected]]"}, key=gateway.live_key)
    queued = await gateway.submit(BODY, key=gateway.live_key)
    assert {r.status_code for r in (done, failed, queued)} == {202}

    # Within the cache window the figures are the ones already read …
    assert value(await scrape(gateway), "imagegate_queue_due", step="submit") == 0
    gateway.runtime.metrics.cluster_read_at = None  # … as if CLUSTER_TTL_SECONDS had passed
    waiting = await scrape(gateway)
    assert value(waiting, "imagegate_queue_due", step="submit") == 3
    queued_jobs = {"status": "QUEUED", "model": "gpt-image-1.5", "provider": "none"}
    assert value(waiting, "imagegate_jobs", **queued_jobs) == 3

    await gateway.drain()
    gateway.runtime.metrics.cluster_read_at = None
    after = await scrape(gateway)
    jobs = {
        dict(labels)["status"]: count
        for (name, labels), count in after.items()
        if name == "imagegate_jobs"
    }
    assert jobs == {"COMPLETED": 2, "FAILED": 1}
    # The figures are the rows': a synchronous vendor refusing at submit leaves no provider on
    # the job (provider="none"); the worker's counter names the provider that answered.
    finished = {"model": "gpt-image-1.5", "status": "FAILED", "provider": "sandbox"}
    assert value(after, "imagegate_jobs_finished_total", **finished) == 1
    captured = value(after, "imagegate_credits_captured")
    refunded = value(after, "imagegate_credits_refunded")
    assert captured > 0 and refunded == captured / 2
    assert 1000 - await gateway.balance() == captured
    assert value(after, "imagegate_queue_oldest_queued_seconds") == 0
    assert CLUSTER_TTL_SECONDS <= 5  # the documented bound on how stale a figure can be


async def test_requests_are_counted_by_route_template(gateway: Gateway) -> None:
    response = await gateway.submit(BODY, key=gateway.live_key)
    job_id = response.json()["jobId"]
    await gateway.job(job_id, key=gateway.live_key)
    missing = "/v2/jobs/00000000-0000-7000-8000-000000000000"
    await gateway.http.get(missing, headers=gateway.headers())
    await gateway.http.get("/no/such/path")
    samples = await scrape(gateway)
    name = "imagegate_http_requests_total"
    assert value(samples, name, method="POST", route="/v2/images/generate", status="202") == 1
    assert value(samples, name, method="GET", route="/v2/jobs/{id}", status="200") == 1
    assert value(samples, name, method="GET", route="/v2/jobs/{id}", status="404") == 1
    assert value(samples, name, method="GET", route="unmatched", status="404") == 1
    assert not any(job_id in dict(labels).get("route", "") for _, labels in samples)
