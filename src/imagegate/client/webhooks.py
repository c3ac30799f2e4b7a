"""Verifying imagegate (and Apiframe) webhooks on the receiving side.

Every delivery carries two signatures; check either one, always against the **raw** body bytes
as received (not a re-serialised JSON object):

    from imagegate.client import verify_apiframe_signature, verify_standard_webhook

    # Apiframe-compatible: keyed by the API key that created the job
    if not verify_apiframe_signature(API_KEY, body, headers["X-Webhook-Signature"]):
        return 401

    # Standard Webhooks: keyed by the account's whsec_ secret; also rejects replays
    try:
        verify_standard_webhook(WEBHOOK_SECRET, headers, body)
    except WebhookVerificationError:
        return 401

    # Or both in one call, which also hands back the decoded event
    event = verify_webhook(body, headers, secret=WEBHOOK_SECRET, api_key=API_KEY)

``webhook-id`` stays the same across retries of one delivery: use it to drop duplicates. This
module imports nothing from the server side of imagegate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_TOLERANCE",
    "WebhookVerificationError",
    "verify_apiframe_signature",
    "verify_standard_webhook",
    "verify_webhook",
]

DEFAULT_TOLERANCE = 300
"""Seconds a ``webhook-timestamp`` may differ from the receiver's clock, either way."""


class WebhookVerificationError(Exception):
    """The webhook is not authentic, or is too old or too new to accept."""


def verify_apiframe_signature(api_key: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (``sha256=<hex>`` or bare hex) signs ``body`` for ``api_key``.

    The HMAC key is the raw SHA-256 digest of the API key string, as Apiframe's SDK does; the
    comparison is constant-time.
    """
    value = header.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    key = hashlib.sha256(api_key.encode("utf-8")).digest()
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), value.lower().encode("utf-8"))


def _secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def verify_standard_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Check a Standard Webhooks delivery; raise ``WebhookVerificationError`` when it fails.

    ``headers`` may use any case. The delivery passes when ``webhook-timestamp`` is within
    ``tolerance`` seconds of ``now`` (default: the system clock) and **any** ``v1,`` entry of the
    space-separated ``webhook-signature`` matches (the sender lists one per active secret while
    a secret is being rotated). A malformed ``secret`` raises ``ValueError``: that is the
    receiver's configuration, not the sender's fault.
    """
    key = _secret_key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    skew = (time.time() if now is None else now) - sent_at
    if skew > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if skew < -tolerance:
        raise WebhookVerificationError("webhook-timestamp is too new")
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    raise WebhookVerificationError("no webhook-signature entry matches this secret")


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str | None = None,
    api_key: str | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a delivery by each scheme you hold a key for; return its decoded JSON event.

    ``secret`` (the account's ``whsec_`` secret) checks the Standard Webhooks headers, with
    their replay window; ``api_key`` (the key that created the job) checks Apiframe's
    ``X-Webhook-Signature``. Given both, both must pass. Raises ``WebhookVerificationError``
    when a check fails or its header is missing, and ``ValueError`` when neither key is given.
    """
    if secret is None and api_key is None:
        raise ValueError("pass secret= (Standard Webhooks), api_key= (Apiframe), or both")
    if secret is not None:
        verify_standard_webhook(secret, headers, body, tolerance, now=now)
    if api_key is not None:
        lowered = {name.lower(): value for name, value in headers.items()}
        header = lowered.get("x-webhook-signature")
        if header is None:
            raise WebhookVerificationError("missing X-Webhook-Signature header")
        if not verify_apiframe_signature(api_key, body, header):
            raise WebhookVerificationError("X-Webhook-Signature does not match this API key")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None
