"""Input built to break the server gets a 400 naming the problem (416 for ranges), never a 500.

Each case once failed deep inside: the JSON decoder's recursion, Python's int/str digit limit,
``str.isdigit`` accepting ``²``, PostgreSQL refusing NUL in text. Every test runs on SQLite and
PostgreSQL, and nothing is queued or charged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import count_rows
from tests.integration.conftest import Gateway

HUGE = "9" * 5000
GPT = '{"model": "gpt-image-1.5", "prompt": "a red fox", "gptImageParams": {%s}}'


async def post_raw(
    gateway: Gateway, body: bytes, **headers: bytes | str
) -> tuple[int, dict[str, Any]]:
    """POST a raw body; header values that are ``str`` go out as UTF-8 bytes."""
    raw = {name: v.encode() if isinstance(v, str) else v for name, v in headers.items()}
    response = await gateway.http.post(
        "/v2/images/generate",
        content=body,
        headers={"X-API-Key": gateway.live_key, "Content-Type": "application/json", **raw},
    )
    answer: dict[str, Any] = response.json()
    return response.status_code, answer


@pytest.mark.parametrize(
    ("body", "path", "rule"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "body", "nests deeper than 32 levels"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "body", "nests deeper than 32 levels"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, ".".join(["a"] * 32), "nests deeper than 32 levels"),
        (HUGE.encode(), "body", "is too large a number"),
        (
            (GPT % f'"number_of_images": {HUGE}').encode(),
            "gptImageParams.number_of_images",
            "is too large a number",
        ),
        (
            (GPT % '"number_of_images": 1e999').encode(),
            "gptImageParams.number_of_images",
            "is too large a number",
        ),
        (
            (GPT % '"number_of_images": NaN').encode(),
            "gptImageParams.number_of_images",
            "must be a finite number (NaN is not JSON)",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "a red\\u0000fox"}',
            "prompt",
            "must not contain a NUL character",
        ),
        (
            (GPT % '"quality": "lo\\u0000w"').encode(),
            "gptImageParams.quality",
            "must not contain a NUL character",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "fox", "x\\u0000": 1}',
            "body",
            "has a field name with a NUL character",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "a red \\ud800 fox"}',
            "prompt",
            "must not contain an unpaired surrogate",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "a red \xed\xa0\x80 fox"}',
            "prompt",
            "must not contain an unpaired surrogate",
        ),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deeper-than-allowed",
        "huge-int-body",
        "huge-int-param",
        "infinite-float",
        "nan",
        "nul-prompt",
        "nul-param",
        "nul-field-name",
        "lone-surrogate",
        "encoded-surrogate",
    ],
)
async def test_hostile_body_is_400_naming_the_path(
    gateway: Gateway, body: bytes, path: str, rule: str
) -> None:
    status, answer = await post_raw(gateway, body)

    assert status == 400, answer
    assert answer["code"] == "validation_failed"
    assert any(rule in message for message in answer["details"][path]), answer
    assert await count_rows(gateway.runtime.db, "jobs") == 0
    assert await gateway.balance() == 1000


async def test_nul_in_a_midjourney_action_is_400_naming_the_field(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/images/midjourney/action",
        content=b'{"action": "upsample", "parentJobId": "x\\u0000", "index": 1}',
        headers={"X-API-Key": gateway.live_key, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["details"] == {
        "parentJobId": ["must not contain a NUL character (\\u0000)"]
    }


@pytest.mark.parametrize("days", [HUGE, "²", b"\xb2", "٣", "0x10", "-1", ""])
async def test_malformed_retention_days_is_400(gateway: Gateway, days: str | bytes) -> None:
    status, answer = await post_raw(
        gateway, (GPT % '"quality": "low"').encode(), **{"X-Retention-Days": days}
    )

    assert status == 400, answer
    assert list(answer["details"]) == ["X-Retention-Days"]
    assert await count_rows(gateway.runtime.db, "jobs") == 0


async def signed_file(gateway: Gateway) -> tuple[str, str]:
    """A stored 100-byte file: its signed URL's path and query."""
    await gateway.runtime.store.put("outputs/t/1.bin", bytes(range(100)), "image/png")
    url = urlsplit(gateway.runtime.signer.sign("outputs/t/1.bin", 600))
    return url.path, url.query


@pytest.mark.parametrize("expires", [HUGE, "²", "٣٣٣٣٣٣٣٣٣٣", "-5", "1e9"])
async def test_file_url_with_malformed_expires_is_400(gateway: Gateway, expires: str) -> None:
    path, query = await signed_file(gateway)
    signature = query.split("signature=")[1]

    response = await gateway.http.get(path, params={"expires": expires, "signature": signature})

    assert response.status_code == 400
    assert response.json() == {
        "error": "Malformed file URL: expires must be a Unix time in seconds",
        "code": "invalid_file_url",
    }


@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        (f"bytes={HUGE}-", 416, "bytes */100"),
        (f"bytes={HUGE}-{HUGE}", 416, "bytes */100"),
        ("bytes=٣-", 416, "bytes */100"),
        # RFC 9110: a last position past the end means "to the end"; a suffix longer than the
        # file means the whole file.
        (f"bytes=90-{HUGE}", 206, "bytes 90-99/100"),
        (f"bytes=-{HUGE}", 206, "bytes 0-99/100"),
    ],
)
async def test_range_with_a_huge_number_is_416_or_clamped(
    gateway: Gateway, header: str, status: int, content_range: str
) -> None:
    path, query = await signed_file(gateway)

    response = await gateway.http.get(f"{path}?{query}", headers={"Range": header.encode()})

    assert response.status_code == status
    assert response.headers["content-range"] == content_range


@pytest.mark.parametrize(
    ("method", "url", "where"),
    [
        ("GET", "/v2/jobs?model=%00", "model"),
        ("GET", "/v2/jobs?limit=5&search=a%00b", "search"),
        ("GET", "/v2/jobs/%00", "path"),
        ("POST", "/v2/jobs/%00/cancel", "path"),
        ("GET", "/v2/models/gpt%00", "path"),
        ("GET", "/files/outputs/a%00b?expires=1&signature=ab", "path"),
    ],
)
async def test_nul_in_the_path_or_query_is_400_naming_where(
    gateway: Gateway, method: str, url: str, where: str
) -> None:
    response = await gateway.http.request(method, url, headers={"X-API-Key": gateway.live_key})

    assert response.status_code == 400
    assert response.json()["details"] == {where: ["must not contain a NUL character (\\u0000)"]}


async def test_nul_in_a_header_is_400_naming_it(gateway: Gateway) -> None:
    status, answer = await post_raw(
        gateway, (GPT % '"quality": "low"').encode(), **{"Idempotency-Key": b"a\x00b"}
    )

    assert status == 400
    assert answer["details"] == {"idempotency-key": ["must not contain a NUL character (\\u0000)"]}
    assert await count_rows(gateway.runtime.db, "jobs") == 0
