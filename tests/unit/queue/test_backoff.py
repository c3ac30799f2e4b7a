from __future__ import annotations

import random

import pytest

from imagegate.queue.backoff import retry_delay


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 30])
def test_full_jitter_stays_within_the_exponential_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
    delays = [retry_delay(attempt, base=2.0, cap=60.0, rng=rng) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8  # it really spreads out


def test_retry_after_is_a_floor_but_capped() -> None:
    rng = random.Random(1)
    assert all(retry_delay(1, base=1, cap=60, advised=30, rng=rng) >= 30 for _ in range(100))
    assert retry_delay(1, base=1, cap=60, advised=3600, rng=rng) == 60
