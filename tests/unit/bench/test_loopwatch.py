"""The slow-callback launcher names what held the loop in a few words."""

from __future__ import annotations

import pytest
from bench.loopwatch import short

SITE = "/srv/app/.venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("handle", "expected"),
    [
        (
            "<Task pending name='Task-1302' coro=<JobRunner.run() running at "
            "/srv/app/src/imagegate/queue/runner.py:139> wait_for=<Future pending "
            "cb=[Task.task_wakeup()] created at /x/base_events.py:427>",
            "JobRunner.run() at …/imagegate/queue/runner.py:139",
        ),
        (
            f"<Handle set_result(<Future finis...events.py:427>, None) at {SITE}/aiosqlite/"
            f"core.py:32 created at {SITE}/aiosqlite/core.py:66>",
            "set_result at …/aiosqlite/core.py:32",
        ),
        (
            "<Handle shield.<locals>._inner_done_callback(<Task finishe.../tasks.py:384>) at "
            "/usr/lib/python3.11/asyncio/tasks.py:891 created at /x>",
            "shield.<locals>._inner_done_callback at …/asyncio/tasks.py:891",
        ),
        ("<weird thing>", "<weird thing>"),
    ],
)
def test_short_names_the_callback_and_its_source_line(handle: str, expected: str) -> None:
    assert short(handle) == expected
