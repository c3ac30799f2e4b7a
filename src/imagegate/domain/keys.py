"""API key format and hashing.

A key is ``ig_live_<43 url-safe chars>`` or ``ig_test_<…>`` (256 bits of randomness). Only its
SHA-256 is stored: keys are high-entropy, so a fast hash is enough and lookups are one indexed
equality. The same raw digest keys Apiframe's webhook signature (HMAC over the body), which is why
the gateway can sign webhooks without ever keeping the key.
"""

from __future__ import annotations

import hashlib
import secrets

from imagegate.types import KeyKind

__all__ = ["PREFIX_LENGTH", "generate_key", "key_digest", "key_hash", "key_prefix"]

PREFIX_LENGTH = 12


def generate_key(kind: KeyKind) -> str:
    return f"ig_{kind.value}_{secrets.token_urlsafe(32)}"


def key_digest(key: str) -> bytes:
    """The raw 32-byte SHA-256 of the key (Apiframe's webhook signing secret)."""
    return hashlib.sha256(key.encode()).digest()


def key_hash(key: str) -> str:
    """What the database stores and looks keys up by: the digest in hex."""
    return key_digest(key).hex()


def key_prefix(key: str) -> str:
    """The part shown in listings so a person can tell keys apart."""
    return key[:PREFIX_LENGTH]
