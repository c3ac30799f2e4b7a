"""Generated requests for every operation of ``/openapi.json``, sent with a test key and a live key
with credits: no answer is a server error, and every answer is one the document describes
(status, content type, body schema). Then a fuzz of the submit body alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.store.migrate import upgrade_sync
from imagegate.testing.clock import FakeClock
from imagegate.types import KeyKind
from tests.conftest import make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Served:
    app: FastAPI
    keys: dict[str, str]


async def _account(database_url: str, data_dir: Path) -> dict[str, str]:
    runtime = build_runtime(make_settings(database_url, data_dir))
    clock = FakeClock(start_ms=time.time_ns() // 1_000_000)
    try:
        account = await account_service.create_account(runtime.db, clock, "fuzz", "f@fuzz.test")
        live = await account_service.create_key(runtime.db, clock, account.id, KeyKind.LIVE, "l")
        test = await account_service.create_key(runtime.db, clock, account.id, KeyKind.TEST, "t")
        await account_service.grant_credits(runtime.db, clock, account.id, 1_000_000)
    finally:
        await runtime.aclose()
    return {"live": live.secret, "test": test.secret}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app over a migrated SQLite database, with a funded account. Requests run on
    schemathesis's own event loop, so the keys are made by a runtime of their own first."""
    base = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite+aiosqlite:///{base / 'imagegate.db'}"
    upgrade_sync(database_url)
    keys = asyncio.run(_account(database_url, base / "data"))
    runtime = build_runtime(
        make_settings(
            database_url,
            base / "data",
            routes={"gpt-image-1.5": ["sandbox:gpt-image-1.5"]},
            max_queued_jobs_per_account=1_000_000,
        )
    )
    yield Served(create_app(runtime), keys)


def test_every_operation_answers_as_documented(served: Served) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def answers_as_documented(case: Any) -> None:
            for key in served.keys.values():
                case.call_and_validate(headers={"X-API-Key": key}, checks=CHECKS)

        answers_as_documented()


# JSON has no NaN or Infinity: the client cannot send them (hostile-input tests send raw bytes).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
MODELS = st.sampled_from(["gpt-image-1.5", "midjourney", "flux-2-pro", "nano-banana", "x"])
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"model": MODELS, "prompt": st.text()},
        optional={"gptImageParams": JSON, "midjourneyParams": JSON, "webhookUrl": st.text()},
    ),
    st.binary(max_size=64),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, key=st.sampled_from(["live", "test"]))
def test_submit_body_fuzz_never_gets_a_server_error(served: Served, body: Any, key: str) -> None:
    headers = {"X-API-Key": served.keys[key]}
    with asgi.get_client(served.app) as http:  # the event loop the schema tests use
        if isinstance(body, bytes):
            response = http.post("/v2/images/generate", data=body, headers=headers)
        else:
            response = http.post("/v2/images/generate", json=body, headers=headers)

    assert response.status_code in (202, 400, 402), response.text
    assert set(response.json()) <= {
        "jobId",
        "status",
        "error",
        "code",
        "details",
        "creditsRequired",
        "creditsAvailable",
    }
