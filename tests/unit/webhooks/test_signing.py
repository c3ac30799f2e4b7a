"""Webhook signatures, checked against independent implementations.

Standard Webhooks signatures are verified with the reference ``standardwebhooks`` library; the
Apiframe signature against HMAC-SHA256 written out here, as Apiframe's SDK computes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.webhooks.signing import (
    apiframe_signature,
    new_secret,
    standard_signature,
    webhook_headers,
)

BODY = b'{"event":"completed","jobId":"0190b6f2-0000-7000-8000-000000000001","status":"COMPLETED"}'
API_KEY = "ig_live_0123456789abcdef"


def apiframe_reference(api_key: str, body: bytes) -> str:
    """Apiframe's SDK: createHash('sha256').update(apiKey).digest() keys an HMAC of the body."""
    signing_secret = hashlib.sha256(api_key.encode("utf-8")).digest()
    return "sha256=" + hmac.new(signing_secret, body, hashlib.sha256).hexdigest()


def test_apiframe_signature_matches_the_sdk_scheme() -> None:
    digest = hashlib.sha256(API_KEY.encode()).digest()
    assert apiframe_signature(digest, BODY) == apiframe_reference(API_KEY, BODY)
    assert apiframe_signature(digest, BODY + b" ") != apiframe_reference(API_KEY, BODY)


def test_apiframe_signature_refuses_a_hex_digest() -> None:
    """The key is the raw 32 bytes; the 64-character hex form is a different (wrong) key."""
    with pytest.raises(ValueError, match="raw 32-byte"):
        apiframe_signature(hashlib.sha256(API_KEY.encode()).hexdigest().encode(), BODY)


def test_new_secret_shape() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert len(base64.b64decode(new_secret(24)[6:])) == 24
    assert len(base64.b64decode(new_secret(64)[6:])) == 64
    assert new_secret() != new_secret()
    for bad in (23, 65):
        with pytest.raises(ValueError, match="24 to 64"):
            new_secret(bad)


def test_standard_signature_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = webhook_headers(
        event="completed",
        msg_id="msg_0190b6f2",
        timestamp=now,
        body=BODY,
        secrets=[secret],
        api_key_sha256_digest=hashlib.sha256(API_KEY.encode()).digest(),
    )
    assert Webhook(secret).verify(BODY, headers)["status"] == "COMPLETED"
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-timestamp"] == str(now)
    assert headers["X-Webhook-Signature"] == apiframe_reference(API_KEY, BODY)
    assert headers["X-Webhook-Event"] == "completed"
    assert headers["Content-Type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"COMPLETED", b"FAILED"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_rotation_sends_one_signature_per_secret_and_each_verifies() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())
    signature = standard_signature([new, old], "msg_1", now, BODY)
    assert len(signature.split(" ")) == 2
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


def test_signature_covers_id_and_timestamp() -> None:
    secret = new_secret()
    now = int(time.time())
    signature = standard_signature([secret], "msg_1", now, BODY)
    for msg_id, stamp in (("msg_2", now), ("msg_1", now - 1)):
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
        }
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, headers)


def test_unpadded_secret_signs_like_the_reference_library() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 25).decode().rstrip("=")
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": standard_signature([secret], "msg_1", now, BODY),
    }
    Webhook(secret).verify(BODY, headers)


def test_headers_without_an_api_key_digest_omit_the_apiframe_signature() -> None:
    headers = webhook_headers(
        event="failed", msg_id="m", timestamp=1, body=BODY, secrets=[new_secret()]
    )
    assert "X-Webhook-Signature" not in headers
    assert set(headers) == {
        "Content-Type",
        "X-Webhook-Event",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


@pytest.mark.parametrize(
    ("secrets", "msg_id", "message"),
    [
        ([], "msg_1", "at least one"),
        (["whsec_@@@"], "msg_1", "base64"),
        (["whsec_"], "msg_1", "empty"),
        ([new_secret()], "msg.1", "must not contain '.'"),
    ],
)
def test_standard_signature_refuses_bad_input(
    secrets: list[str], msg_id: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        standard_signature(secrets, msg_id, 1, BODY)
