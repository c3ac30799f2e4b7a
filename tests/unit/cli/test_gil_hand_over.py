"""A gateway on PostgreSQL hands the GIL to a thread that waits for it within half a millisecond:
its database answers are read on body threads while the event loop runs Python."""

from __future__ import annotations

import statistics
import sys
import threading
import time

from imagegate.cli.server import GIL_SWITCH_INTERVAL_SECONDS, hand_the_gil_over_sooner


def gil_waits_while_another_thread_computes(samples: int = 20) -> list[float]:
    """How long a thread, woken from a short sleep, waited for the GIL each time while this one
    ran Python without a pause."""
    waits: list[float] = []
    done = threading.Event()

    def sleeper() -> None:
        for _ in range(samples):
            due = time.perf_counter() + 0.001
            time.sleep(0.001)
            waits.append(time.perf_counter() - due)
        done.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    spins = 0
    while not done.is_set():
        spins += 1  # Python bytecode only: the GIL is given up only when asked for
    thread.join()
    return waits


def test_a_thread_waiting_for_the_gil_gets_it_within_a_millisecond_or_two() -> None:
    default = sys.getswitchinterval()
    try:
        hand_the_gil_over_sooner()
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_SECONDS
        waits = gil_waits_while_another_thread_computes()
    finally:
        sys.setswitchinterval(default)

    # With Python's default each wait is about 5 ms.
    assert statistics.median(waits) < 0.0025, waits
