"""The slow-callback launcher names what held the loop in a few words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench.gateway import LoopWatch
from bench.loopwatch import short

LAUNCHER = Path(__file__).resolve().parents[3] / "bench" / "loopwatch.py"

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


PROGRAM = """
import asyncio, gc, time

kept = [[n] for n in range(1_000_000)]  # tracked containers: a full collection takes a while


async def main():
    asyncio.get_running_loop().call_soon(gc.collect)
    await asyncio.sleep(0)  # the collection runs as a callback of its own, before this resumes
    await asyncio.sleep(0.05)  # then a gap: however long the collection took, none of it is below
    busy_until = time.perf_counter() + 0.05
    while time.perf_counter() < busy_until:
        pass
    await asyncio.sleep(0)


asyncio.run(main())
"""


def watched_run(tmp_path: Path, text: str) -> LoopWatch:
    """Run the program ``text`` to its end under the launcher; its report."""
    program, report = tmp_path / "program.py", tmp_path / "report.jsonl"
    program.write_text(text)
    subprocess.run([sys.executable, str(LAUNCHER), str(report), str(program)], check=True)
    return LoopWatch(report)


def test_a_slow_callback_says_how_much_of_it_the_garbage_collector_took(tmp_path: Path) -> None:
    collected, busy = watched_run(tmp_path, PROGRAM).events()
    assert collected[3] >= collected[1] / 2 > 0.01
    assert busy[1] >= 0.05 > busy[3]


SLOW_THEN_WAITING = """
import asyncio, sys, time


async def main():
    for _ in range(3):
        time.sleep(0.03)  # a slow callback
        await asyncio.sleep(0)
    print("slow", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


asyncio.run(main())
"""


def test_the_report_holds_each_slow_callback_while_the_program_still_runs(
    tmp_path: Path,
) -> None:
    program, report = tmp_path / "program.py", tmp_path / "report.jsonl"
    program.write_text(SLOW_THEN_WAITING)
    launched = [sys.executable, str(LAUNCHER), str(report), str(program)]
    with subprocess.Popen(launched, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as running:
        assert running.stdout is not None and running.stdin is not None
        assert running.stdout.readline() == b"slow\n"
        watch = LoopWatch(report)

        assert watch.mark() == 3
        assert watch.since(1)["count"] == 2
        assert watch.since(0)["longest"].startswith("main() at ")
        # One line per event, appended: nothing before it is written again.
        assert [json.loads(line) for line in report.read_text().splitlines()] == watch.events()
        running.stdin.write(b"\n")
    assert running.returncode == 0


WAITING_THEN_WORKING = """
import asyncio, time


async def main():
    time.sleep(0.05)  # holds the loop without using the CPU, as a wait for a CPU would
    await asyncio.sleep(0)
    busy_until = time.thread_time() + 0.05  # 50 ms of CPU, however long a loaded machine takes
    while time.thread_time() < busy_until:
        pass
    await asyncio.sleep(0)


asyncio.run(main())
"""


def test_a_slow_callback_says_how_much_cpu_its_thread_had_at_most(tmp_path: Path) -> None:
    watch = watched_run(tmp_path, WAITING_THEN_WORKING)

    waited, worked = watch.events()
    assert waited[4] < waited[1] / 2
    assert worked[4] >= 0.05
    # The working one waited too if the machine was busy enough to stretch it past 100 ms.
    assert watch.since(0)["mostly_waiting"] == 1 + (worked[4] < worked[1] / 2)
