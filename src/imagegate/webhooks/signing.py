"""Webhook signatures, both schemes a delivery carries.

- **Apiframe** (``X-Webhook-Signature: sha256=<hex>``): HMAC-SHA256 of the raw body keyed by the
  raw 32-byte SHA-256 digest of the API key that created the job. The gateway stores only that
  digest (never the key), which is exactly the HMAC key, so ``apiframe_signature`` takes it.
- **Standard Webhooks** (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``): HMAC-SHA256
  of ``"{id}.{timestamp}.{body}"`` keyed by the base64-decoded ``whsec_`` secret, sent as
  ``v1,<base64>``; one signature per active secret, space-separated, so receivers keep
  verifying while an account rotates its secret.

Both sign the exact bytes that are sent; callers must not re-serialise the body afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Sequence

__all__ = [
    "SECRET_PREFIX",
    "apiframe_signature",
    "new_secret",
    "secret_bytes",
    "standard_signature",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"


def apiframe_signature(api_key_sha256_digest: bytes, body: bytes) -> str:
    """``"sha256=<lowercase hex>"``: HMAC-SHA256(key=SHA-256(api key) raw digest, msg=body)."""
    if len(api_key_sha256_digest) != hashlib.sha256().digest_size:
        raise ValueError("the Apiframe signing key is the raw 32-byte SHA-256 digest of the key")
    return "sha256=" + hmac.new(api_key_sha256_digest, body, hashlib.sha256).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    """A fresh Standard Webhooks secret, ``whsec_<base64 of nbytes random bytes>`` (24–64)."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a Standard Webhooks secret is 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a ``whsec_…`` secret stands for (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # unpadded secrets are accepted, as verifiers do
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def standard_signature(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``"v1,<b64> v1,<b64>"``, one entry per secret.

    ``timestamp`` is the Unix time in seconds of this attempt (it changes on every retry;
    ``msg_id`` does not). Neither may contain ``.``, which separates the signed parts.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    stamp = str(int(timestamp))
    if "." in msg_id or not msg_id:
        raise ValueError("a webhook id must be non-empty and must not contain '.'")
    signed = f"{msg_id}.{stamp}.".encode() + body
    digests = (hmac.new(secret_bytes(s), signed, hashlib.sha256).digest() for s in secrets)
    return " ".join("v1," + base64.b64encode(d).decode("ascii") for d in digests)


def webhook_headers(
    *,
    event: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    api_key_sha256_digest: bytes | None = None,
) -> dict[str, str]:
    """Every header of one delivery attempt, both schemes.

    ``X-Webhook-Signature`` is left out when the job's API key digest is unknown (the key was
    deleted); the Standard Webhooks headers are always there.
    """
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Event": event,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": standard_signature(secrets, msg_id, timestamp, body),
    }
    if api_key_sha256_digest is not None:
        headers["X-Webhook-Signature"] = apiframe_signature(api_key_sha256_digest, body)
    return headers
