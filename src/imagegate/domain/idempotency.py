"""Idempotency-Key rules.

The key (≤ 255 characters) is scoped to the account. A request's fingerprint is the SHA-256 of
the route and its canonical JSON body (sorted keys, no insignificant whitespace), so the same body
sent with keys in another order is the same request. Same key + same fingerprint within the TTL →
the original job is returned; same key + another fingerprint → 409 (Apiframe's choice; the IETF
draft would say 422).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from imagegate.errors import ValidationFailed

__all__ = ["MAX_KEY_LENGTH", "check_key", "fingerprint"]

MAX_KEY_LENGTH = 255


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed.field("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
    return key


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""Made once: ``json.dumps`` given these options makes a new encoder per call."""


def fingerprint(route: str, body: Any) -> str:
    canonical = _CANONICAL.encode(body)
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()
