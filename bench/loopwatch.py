"""Run a Python program with asyncio's slow-callback report on, and count what it reports.

    python bench/loopwatch.py REPORT.jsonl -m imagegate.cli.main:main serve --no-workers
    python bench/loopwatch.py REPORT.jsonl bench/anchor.py --port 8001

Every event loop the program creates times its callbacks the way asyncio's debug mode does, with
``loop.slow_callback_duration`` set to ``BENCH_SLOW_CALLBACK_SECONDS`` (default 0.02) but
without the rest of debug mode (see ``WatchedLoop``). asyncio then logs
``Executing <handle> took 0.123 seconds`` for each callback that held the loop that long; a
handler on the ``asyncio`` logger appends each one to REPORT as a line of JSON, ``[time,
seconds, handle, seconds in the collector, seconds of CPU at most]``, so the file is current
whenever the harness reads it, including after the process was killed. Appending a line costs
the same however many came before; rewriting the whole report after each event (as this
launcher once did) grew with the count and, on a loaded run with hundreds of events, became one
of the stalls it counted. The anchor app runs under the same launcher, so both sides of a ratio
pay for the timing alike (two clock reads per callback, one read of the thread's CPU time per
turn of the loop).

The garbage collector's pauses are timed too (``gc.callbacks``): each slow callback records how
much of its time went to collections that ran inside it, so a report can tell a callback that
did too much work from one that a full collection happened to stop. So is the CPU the loop's
thread used at most meanwhile: its CPU time since the loop's turn began, which holds the slow
callback and those before it in the same turn. A callback that took 20 ms and at most a few of
CPU waited (for a CPU, the GIL, the host); on a machine shared with other work most do
(``bench/notes.md`` ``## slow-callbacks``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import re
import runpy
import sys
import time
from pathlib import Path
from typing import Any

THRESHOLD = float(os.environ.get("BENCH_SLOW_CALLBACK_SECONDS", "0.02"))


_CORO = re.compile(r"coro=<(?P<name>[^ >]+)(?: (?:running|done)[^/]*(?P<at>/\S+?))?>")
_HANDLE = re.compile(r"<Handle (?P<name>[^ (]+)\(.*?\) at (?P<at>/\S+)")


def short(handle: str) -> str:
    """What ran and where (``JobRunner.run() at …/queue/runner.py:139``), from asyncio's repr."""
    found = _CORO.search(handle) or _HANDLE.search(handle)
    if found is None:
        return handle[:200]
    at = re.sub(r"^.*/(site-packages|src|lib/python3\.\d+)/", "…/", found["at"] or "")
    return f"{found['name']} at {at}" if at else found["name"]


class GcPauses:
    """The collector's recent pauses (end time, seconds), from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.recent: list[tuple[float, float]] = []
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        pause = now - self._started
        self.longest = max(self.longest, pause)
        if pause >= 0.001:
            self.recent.append((now, pause))
            del self.recent[:-64]

    def within(self, seconds: float) -> float:
        """Seconds of collection that ended in the last ``seconds`` (the slow callback's span)."""
        since = time.perf_counter() - seconds - 0.001
        return sum(pause for end, pause in self.recent if end >= since)


class SlowCallbacks(logging.Handler):
    """Appends asyncio's ``Executing … took …`` warnings to ``path``, one JSON line each."""

    def __init__(self, path: Path, pauses: GcPauses) -> None:
        super().__init__(level=logging.WARNING)
        self.pauses = pauses
        # Line-buffered: each event is one write(2) of its own line, complete when read.
        self._file = path.open("w", buffering=1)

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith("Executing ") or not record.args:
            return
        args: Any = record.args
        seconds, handle = float(args[1]), short(str(args[0]))
        in_gc = self.pauses.within(seconds)
        turn_began = getattr(asyncio.get_running_loop(), "turn_cpu", None)
        cpu = seconds if turn_began is None else time.thread_time() - turn_began
        event = [round(time.time(), 3), round(seconds, 4), handle, round(in_gc, 4), round(cpu, 4)]
        self._file.write(json.dumps(event) + "\n")  # Handler.handle holds self.lock


class WatchedLoop(asyncio.SelectorEventLoop):
    """asyncio's debug-mode callback timing, without debug mode's bookkeeping.

    ``_run_once`` times each callback and logs the slow ones when ``self._debug`` is set; the rest
    of debug mode (a stack captured for every handle, future and task through ``get_debug()``,
    coroutine origin tracking) would cost the gateway and the anchor well over half their
    throughput, and more per request the more callbacks a request takes. So ``_debug`` is on and
    ``get_debug()`` answers False; the per-call checks that ``_debug`` also turns on are skipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slow_callback_duration = THRESHOLD
        self._debug = True
        self.turn_cpu = time.thread_time()
        """The thread's CPU time when the loop's current turn began."""

    def _run_once(self) -> None:
        self.turn_cpu = time.thread_time()
        super()._run_once()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass  # asyncio.run sets it from PYTHONASYNCIODEBUG; the timing stays on regardless

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        pass

    def _check_thread(self) -> None:
        pass

    def _check_callback(self, callback: object, method: str) -> None:
        pass


class _WatchedPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return WatchedLoop()


def main() -> None:
    report, *target = sys.argv[1:]
    handler = SlowCallbacks(Path(report), GcPauses())
    watched = logging.getLogger("asyncio")
    watched.setLevel(logging.WARNING)
    watched.addHandler(handler)
    asyncio.set_event_loop_policy(_WatchedPolicy())
    if target[0] == "-m" and ":" in target[1]:
        module, func = target[1].split(":")
        sys.argv = [module, *target[2:]]
        getattr(importlib.import_module(module), func)()
    elif target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = target
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main()
