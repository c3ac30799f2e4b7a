"""Receiver-side verification helpers, fed by independently produced signatures.

Standard Webhooks deliveries are signed here with the reference ``standardwebhooks`` library;
Apiframe signatures with HMAC-SHA256 written out in the test.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

import imagegate.client
from imagegate.client import (
    WebhookVerificationError,
    verify_apiframe_signature,
    verify_standard_webhook,
    verify_webhook,
)

BODY = b'{"event":"completed","jobId":"j1","status":"COMPLETED","progress":100}'
API_KEY = "ig_live_abc"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def apiframe_header(api_key: str, body: bytes) -> str:
    key = hashlib.sha256(api_key.encode()).digest()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def standard_headers(secret: str, body: bytes, *, at: int, msg_id: str = "msg_1") -> dict[str, str]:
    when = datetime.fromtimestamp(at, tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def test_public_surface() -> None:
    assert {
        "WebhookVerificationError",
        "verify_apiframe_signature",
        "verify_standard_webhook",
    } <= set(imagegate.client.__all__)
    assert all(hasattr(imagegate.client, name) for name in imagegate.client.__all__)


def test_apiframe_good_signature_in_every_accepted_form() -> None:
    header = apiframe_header(API_KEY, BODY)
    assert verify_apiframe_signature(API_KEY, BODY, header)
    assert verify_apiframe_signature(API_KEY, BODY, header.removeprefix("sha256="))
    assert verify_apiframe_signature(API_KEY, BODY, " " + header.upper() + " ")


@pytest.mark.parametrize(
    ("api_key", "body", "header"),
    [
        (API_KEY, BODY + b" ", apiframe_header(API_KEY, BODY)),  # tampered body
        ("ig_live_other", BODY, apiframe_header(API_KEY, BODY)),  # wrong key
        (API_KEY, BODY, ""),
        (API_KEY, BODY, "sha256="),
        (API_KEY, BODY, "sha256=" + "zz" * 32),
        (API_KEY, BODY, "sha256=é"),
        # keyed by the hex digest instead of the raw digest: a common mistake
        (
            API_KEY,
            BODY,
            "sha256="
            + hmac.new(
                hashlib.sha256(API_KEY.encode()).hexdigest().encode(), BODY, "sha256"
            ).hexdigest(),
        ),
    ],
)
def test_apiframe_bad_signatures_fail(api_key: str, body: bytes, header: str) -> None:
    assert verify_apiframe_signature(api_key, body, header) is False


def test_standard_good_delivery_passes() -> None:
    now = int(time.time())
    verify_standard_webhook(SECRET, standard_headers(SECRET, BODY, at=now), BODY)
    upper = {k.upper(): v for k, v in standard_headers(SECRET, BODY, at=now).items()}
    verify_standard_webhook(SECRET, upper, BODY)
    unprefixed = SECRET.removeprefix("whsec_")
    verify_standard_webhook(unprefixed, standard_headers(SECRET, BODY, at=now), BODY)


def test_standard_rotation_any_listed_signature_passes() -> None:
    now = int(time.time())
    old = standard_headers(OTHER_SECRET, BODY, at=now)
    new = standard_headers(SECRET, BODY, at=now)
    headers = {
        **new,
        "webhook-signature": f"v1a,ignored {old['webhook-signature']} {new['webhook-signature']}",
    }
    verify_standard_webhook(SECRET, headers, BODY)
    verify_standard_webhook(OTHER_SECRET, headers, BODY)


def test_standard_tampered_body_fails() -> None:
    headers = standard_headers(SECRET, BODY, at=int(time.time()))
    with pytest.raises(WebhookVerificationError, match="no webhook-signature entry matches"):
        verify_standard_webhook(SECRET, headers, BODY.replace(b"COMPLETED", b"FAILED"))


def test_standard_wrong_secret_fails() -> None:
    headers = standard_headers(SECRET, BODY, at=int(time.time()))
    with pytest.raises(WebhookVerificationError, match="no webhook-signature entry matches"):
        verify_standard_webhook(OTHER_SECRET, headers, BODY)


def test_standard_replayed_id_or_timestamp_fails() -> None:
    now = int(time.time())
    headers = standard_headers(SECRET, BODY, at=now)
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(SECRET, {**headers, "webhook-id": "msg_2"}, BODY)
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(SECRET, {**headers, "webhook-timestamp": str(now - 1)}, BODY)


def test_standard_stale_and_future_timestamps_fail() -> None:
    now = 1_800_000_000
    headers = standard_headers(SECRET, BODY, at=now)
    verify_standard_webhook(SECRET, headers, BODY, now=now + 300)
    verify_standard_webhook(SECRET, headers, BODY, now=now - 300)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_standard_webhook(SECRET, headers, BODY, now=now + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify_standard_webhook(SECRET, headers, BODY, now=now - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_standard_webhook(
            SECRET, standard_headers(SECRET, BODY, at=int(time.time()) - 600), BODY
        )
    verify_standard_webhook(SECRET, headers, BODY, tolerance=10**10)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": ""},
        {"webhook-signature": ""},
        {"webhook-timestamp": "yesterday"},
        {"webhook-signature": "v1,!!!notbase64"},
        {"webhook-signature": "v2,abc"},
    ],
)
def test_standard_malformed_headers_fail(change: dict[str, str]) -> None:
    headers = {**standard_headers(SECRET, BODY, at=int(time.time())), **change}
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(SECRET, headers, BODY)


def test_standard_bad_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        verify_standard_webhook("whsec_@@", {}, BODY)


def both_signed(body: bytes = BODY) -> dict[str, str]:
    headers = standard_headers(SECRET, body, at=int(time.time()))
    return {**headers, "X-Webhook-Signature": apiframe_header(API_KEY, body)}


def test_verify_webhook_checks_each_scheme_given_and_returns_the_event() -> None:
    headers = both_signed()
    event = {"event": "completed", "jobId": "j1", "status": "COMPLETED", "progress": 100}
    assert verify_webhook(BODY, headers, secret=SECRET) == event
    assert verify_webhook(BODY, headers, api_key=API_KEY) == event
    assert verify_webhook(BODY, headers, secret=SECRET, api_key=API_KEY) == event


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"secret": OTHER_SECRET}, "no webhook-signature entry matches"),
        ({"api_key": "ig_live_other"}, "does not match this API key"),
        ({"secret": SECRET, "api_key": "ig_live_other"}, "does not match this API key"),
        ({"secret": OTHER_SECRET, "api_key": API_KEY}, "no webhook-signature entry matches"),
    ],
)
def test_verify_webhook_fails_when_any_given_scheme_fails(keys: dict[str, str], says: str) -> None:
    with pytest.raises(WebhookVerificationError, match=says):
        verify_webhook(BODY, both_signed(), **keys)


def test_verify_webhook_needs_the_header_of_the_scheme_asked_for() -> None:
    standard_only = standard_headers(SECRET, BODY, at=int(time.time()))
    with pytest.raises(WebhookVerificationError, match="missing X-Webhook-Signature"):
        verify_webhook(BODY, standard_only, api_key=API_KEY)
    with pytest.raises(ValueError, match="pass secret="):
        verify_webhook(BODY, standard_only)
