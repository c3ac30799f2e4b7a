from __future__ import annotations

import httpx2
import pytest

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.providers.http import clean_message, raise_for_upstream, redact, transport_error


def response(status: int, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("POST", "https://x/y"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (408, UpstreamRetryable),
        (409, UpstreamRetryable),
        (429, UpstreamRateLimited),
        (500, UpstreamRetryable),
        (503, UpstreamRetryable),
        (401, UpstreamMisconfigured),
        (403, UpstreamMisconfigured),
        (400, UpstreamRejected),
        (422, UpstreamRejected),
        (404, UpstreamMisconfigured),
        (501, UpstreamError),
    ],
)
def test_status_mapping(status: int, kind: type[UpstreamError]) -> None:
    with pytest.raises(kind) as caught:
        raise_for_upstream(
            response(status, **{"retry-after": "3"}), "acme", "bad  things\nhappened"
        )
    assert type(caught.value) is kind
    if kind is UpstreamRetryable:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]
    if kind is UpstreamRejected:
        assert caught.value.message == "Provider returned an error: bad things happened"


def test_success_passes() -> None:
    raise_for_upstream(response(200), "acme")


def test_transport_errors_before_and_after_sending() -> None:
    request = httpx2.Request("POST", "https://x")
    connect = transport_error(httpx2.ConnectError("refused", request=request), "acme", sent=True)
    assert isinstance(connect, UpstreamRetryable)
    read = transport_error(httpx2.ReadTimeout("slow", request=request), "acme", sent=True)
    assert isinstance(read, UpstreamRejected)
    assert "may already have charged" in read.message
    unsent = transport_error(httpx2.ReadTimeout("slow", request=request), "acme", sent=False)
    assert isinstance(unsent, UpstreamRetryable)


def test_redaction_and_cleaning() -> None:
    assert redact({"Authorization": "Bearer s", "X-Key": "k", "Accept": "a"}) == {
        "Authorization": "[redacted]",
        "X-Key": "[redacted]",
        "Accept": "a",
    }
    assert clean_message("x" * 600).endswith("…")
    assert len(clean_message("x" * 600)) == 501
