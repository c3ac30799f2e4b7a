from __future__ import annotations

import pytest

from imagegate.domain.idempotency import check_key, fingerprint
from imagegate.errors import ValidationFailed


def test_fingerprint_ignores_key_order_and_whitespace_but_not_values() -> None:
    a = fingerprint("/v2/images/generate", {"model": "m", "prompt": "p", "x": {"b": 1, "a": 2}})
    b = fingerprint("/v2/images/generate", {"x": {"a": 2, "b": 1}, "prompt": "p", "model": "m"})
    assert a == b
    assert a != fingerprint("/v2/images/generate", {"model": "m", "prompt": "q", "x": {}})
    assert a != fingerprint(
        "/v2/images/midjourney/action", {"model": "m", "prompt": "p", "x": {"b": 1, "a": 2}}
    )


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_key(key)
    assert "Idempotency-Key" in caught.value.details


def test_good_keys_pass() -> None:
    assert check_key(None) is None
    assert check_key("k" * 255) == "k" * 255
