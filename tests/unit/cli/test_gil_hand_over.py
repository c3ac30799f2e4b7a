"""A gateway on PostgreSQL hands the GIL to a thread that waits for it within half a millisecond:
its database answers are read on body threads while the event loop runs Python.

What that buys is measured by the benchmark (``bench/notes.md`` ``## submit``), not here: a wait
timed in a test would measure the machine's load as much as the interpreter."""

from __future__ import annotations

import sys

from imagegate.cli.server import GIL_SWITCH_INTERVAL_SECONDS, hand_the_gil_over_sooner


def test_the_switch_interval_is_half_a_millisecond() -> None:
    default = sys.getswitchinterval()
    try:
        hand_the_gil_over_sooner()
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_SECONDS == 0.0005
    finally:
        sys.setswitchinterval(default)
