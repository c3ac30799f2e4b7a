from __future__ import annotations

import httpx2
import pytest

from imagegate.net.retry_after import MAX_RETRY_AFTER_SECONDS, retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "100000"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(httpx2.Headers(headers)) == expected


def test_retry_after_http_date_in_the_future() -> None:
    headers = httpx2.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"})
    assert retry_after_seconds(headers, now=1445412480.0) == 30.0
