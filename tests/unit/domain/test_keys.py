from __future__ import annotations

import hashlib

from imagegate.domain.keys import generate_key, key_digest, key_hash, key_prefix
from imagegate.types import KeyKind


def test_keys_are_random_prefixed_and_hashed() -> None:
    live, test = generate_key(KeyKind.LIVE), generate_key(KeyKind.TEST)
    assert live.startswith("ig_live_") and test.startswith("ig_test_")
    assert len(live) >= 50
    assert generate_key(KeyKind.LIVE) != live
    assert key_digest(live) == hashlib.sha256(live.encode()).digest()
    assert key_hash(live) == hashlib.sha256(live.encode()).hexdigest()
    assert live.startswith(key_prefix(live))
    assert len(key_prefix(live)) == 12
