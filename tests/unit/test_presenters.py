"""The wire bodies built from typed records, pinned byte for byte (compact JSON, key order)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from imagegate.presenters import (
    SignedJob,
    accepted_body,
    iso,
    job_body,
    job_page_body,
    output_keys,
    webhook_body,
)
from imagegate.store.jobs import JobRow
from imagegate.store.outputs import OutputRecord
from imagegate.types import JobStatus
from tests.reference import apiframe_schema

CREATED = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
JOB = JobRow(
    id="01a22fca-c9d2-7011-b1c0-d4f642d579d2",
    account_id="acct",
    api_key_id="key",
    model="midjourney",
    status="QUEUED",
    step="submit",
    progress=0,
    prompt="a castle",
    input={"model": "midjourney", "prompt": "a castle"},
    params={},
    action=None,
    parent_job_id=None,
    outputs_expected=4,
    sandbox=False,
    credit_cost=16,
    provider=None,
    upstream_model=None,
    route_index=0,
    provider_task_id=None,
    provider_state=None,
    outputs=None,
    error=None,
    error_code=None,
    webhook_url=None,
    webhook_events=None,
    webhook_status=None,
    run_at=CREATED,
    attempts=0,
    lease_owner=None,
    lease_token=None,
    lease_expires_at=None,
    deadline_at=CREATED + 3_600_000,
    created_at=CREATED,
    updated_at=CREATED,
    started_at=None,
    completed_at=None,
    expires_at=None,
    expired=False,
    retention_days=None,
)
IMAGE = OutputRecord("outputs/j/1.png", "image/png", 2048, 1024, 768, "ab" * 32)
GRID = OutputRecord("outputs/j/grid.png", "image/png", 8192, 2048, 1536, "cd" * 32, grid=True)
URLS = {IMAGE.key: "https://gw/1.png?s=1", GRID.key: "https://gw/grid.png?s=1"}
COMPLETED = dataclasses.replace(
    JOB,
    status="COMPLETED",
    step="done",
    progress=100,
    provider="midjourney",
    upstream_model="mj-v7",
    outputs=[IMAGE, GRID],
    webhook_status="delivered",
    completed_at=CREATED + 30_000,
    expires_at=CREATED + 30_000 + 86_400_000,
)


def wire(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def test_iso_writes_milliseconds_in_utc_with_z() -> None:
    assert iso(CREATED) == "2026-01-01T00:00:00.123Z"
    assert iso(CREATED - 123) == "2026-01-01T00:00:00.000Z"
    assert iso(None) is None


def test_completed_job_body_bytes() -> None:
    assert output_keys(COMPLETED) == [IMAGE.key, GRID.key]
    assert wire(job_body(SignedJob(COMPLETED, URLS))) == (
        '{"id":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"COMPLETED","model":"midjourney","progress":100,'
        '"result":{"images":["https://gw/1.png?s=1"],"gridUrl":"https://gw/grid.png?s=1"},'
        '"error":null,"creditCost":16,"webhookStatus":"delivered",'
        '"createdAt":"2026-01-01T00:00:00.123Z","completedAt":"2026-01-01T00:00:30.123Z",'
        '"expired":false,"outputs":[{"contentType":"image/png","byteSize":2048,"width":1024,'
        '"height":768,"sha256":"' + "ab" * 32 + '","url":"https://gw/1.png?s=1"}],'
        '"servedBy":{"provider":"midjourney","model":"mj-v7"},'
        '"expiresAt":"2026-01-02T00:00:30.123Z",'
        '"input":{"model":"midjourney","prompt":"a castle"}}'
    )


def test_expired_and_unfinished_jobs_show_no_result_and_need_no_urls() -> None:
    expired = dataclasses.replace(COMPLETED, expired=True)
    assert output_keys(expired) == [] and output_keys(JOB) == []
    body = job_body(SignedJob(expired, {}), with_input=False)
    assert body["result"] is None and "outputs" not in body and "input" not in body
    assert body["expired"] is True


def test_sandbox_job_says_so_instead_of_served_by() -> None:
    sandbox = dataclasses.replace(JOB, sandbox=True, provider="sandbox", upstream_model="x")
    assert wire(job_body(SignedJob(sandbox, {}), with_input=False)) == (
        '{"id":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"QUEUED","model":"midjourney","progress":0,"result":null,'
        '"error":null,"creditCost":16,"webhookStatus":null,'
        '"createdAt":"2026-01-01T00:00:00.123Z","completedAt":null,"expired":false,'
        '"sandbox":true}'
    )


def test_webhook_bodies_bytes() -> None:
    assert wire(webhook_body("completed", SignedJob(COMPLETED, URLS))) == (
        '{"event":"completed","jobId":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"COMPLETED","progress":100,'
        '"result":{"images":["https://gw/1.png?s=1"],"gridUrl":"https://gw/grid.png?s=1"},'
        '"model":"midjourney","creditCost":16,"completedAt":"2026-01-01T00:00:30.123Z"}'
    )
    failed = dataclasses.replace(
        JOB, status="FAILED", error="content policy", credit_cost=0, completed_at=CREATED
    )
    assert wire(webhook_body("failed", SignedJob(failed, {}))) == (
        '{"event":"failed","jobId":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"FAILED",'
        '"error":"content policy",'
        '"model":"midjourney","creditCost":0,"completedAt":"2026-01-01T00:00:00.123Z"}'
    )


def test_progress_webhook_announces_the_recorded_progress_not_the_current_one() -> None:
    assert wire(webhook_body("progress", SignedJob(COMPLETED, URLS), progress=40)) == (
        '{"event":"progress","jobId":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"PROCESSING","progress":40,'
        '"model":"midjourney"}'
    )
    running = dataclasses.replace(JOB, status="PROCESSING", progress=55)
    assert wire(webhook_body("progress", SignedJob(running, {}))) == (
        '{"event":"progress","jobId":"01a22fca-c9d2-7011-b1c0-d4f642d579d2","status":"PROCESSING","progress":55,'
        '"model":"midjourney"}'
    )


@pytest.fixture(scope="module")
def apiframe_schemas() -> dict[str, Any]:
    return {name: apiframe_schema(name) for name in ("Job", "JobList", "JobAccepted")}


def conforms(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def test_bodies_conform_to_apiframes_published_schemas(apiframe_schemas: dict[str, Any]) -> None:
    failed = dataclasses.replace(JOB, status="FAILED", error="boom", completed_at=CREATED)
    jobs = [SignedJob(COMPLETED, URLS), SignedJob(JOB, {}), SignedJob(failed, {})]
    for signed in jobs:
        assert conforms(apiframe_schemas["Job"], job_body(signed)) == []
    page = job_page_body(jobs, "cursor", True, ["midjourney"])
    assert conforms(apiframe_schemas["JobList"], page) == []
    accepted = accepted_body(JOB.id, JobStatus.QUEUED)
    assert conforms(apiframe_schemas["JobAccepted"], accepted) == []
