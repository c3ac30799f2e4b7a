"""The receivers ``docs/webhooks.md`` shows are real code: the FastAPI one is run as written."""

from __future__ import annotations

import ast
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from standardwebhooks.webhooks import Webhook

DOC = Path(__file__).parents[3] / "docs" / "webhooks.md"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps(
    {
        "event": "completed",
        "jobId": "j1",
        "status": "COMPLETED",
        "progress": 100,
        "result": {"images": ["https://gw.example/files/a.png"]},
        "model": "gpt-image-1.5",
        "creditCost": 4,
        "completedAt": "2026-03-15T10:00:32.000Z",
    },
    separators=(",", ":"),
).encode()


def example(heading: str) -> str:
    """The first ```python block after ``heading`` in the doc."""
    text = DOC.read_text()
    start = text.index(heading)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match is not None, f"no python example under {heading!r}"
    return match.group(1)


def signed(msg_id: str, body: bytes = BODY) -> dict[str, str]:
    now = int(time.time())
    signature = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(now, tz=UTC), body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }


@pytest.fixture
def fastapi_receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("IMAGEGATE_API_KEY", "ig_live_abc")
    monkeypatch.setenv("IMAGEGATE_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "receiver"}
    exec(compile(example("### FastAPI receiver"), str(DOC), "exec"), namespace)
    return namespace["app"]


async def test_the_fastapi_example_accepts_dedupes_and_rejects(fastapi_receiver: Any) -> None:
    transport = httpx2.ASGITransport(app=fastapi_receiver)
    async with httpx2.AsyncClient(transport=transport, base_url="http://receiver") as client:
        first = await client.post("/hooks/imagegate", content=BODY, headers=signed("msg_1"))
        again = await client.post("/hooks/imagegate", content=BODY, headers=signed("msg_1"))
        tampered = await client.post(
            "/hooks/imagegate", content=BODY.replace(b"j1", b"j2"), headers=signed("msg_2")
        )
        unsigned = await client.post("/hooks/imagegate", content=BODY)
    assert (first.status_code, first.json()) == (200, {"status": "ok"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert tampered.status_code == 401
    assert unsigned.status_code == 401


def test_the_flask_example_is_valid_python_using_the_client_helpers() -> None:
    """Flask is not a dependency, so its example is only parsed and its imports checked."""
    tree = ast.parse(example("### Flask receiver"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "imagegate.client"
        for alias in node.names
    }
    import imagegate.client

    assert imported == {
        "verify_apiframe_signature",
        "verify_standard_webhook",
        "WebhookVerificationError",
    }
    assert imported <= set(imagegate.client.__all__)
