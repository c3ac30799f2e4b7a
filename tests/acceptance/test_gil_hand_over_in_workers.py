"""A worker on PostgreSQL hands the GIL to a thread waiting for it within half a millisecond, as
a gateway on PostgreSQL does (``cli.server.GIL_SWITCH_INTERVAL_SECONDS``): its event loop waits
for the GIL behind its body threads and obstore's. On SQLite it keeps Python's default.

The worker runs as a process of its own; a ``sitecustomize`` put first on its path writes the
switch interval it has as it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import IMAGEGATE, child_env

RECORDER = """
import atexit, os, sys
atexit.register(
    lambda: open(os.environ["SWITCH_INTERVAL_FILE"], "w").write(repr(sys.getswitchinterval()))
)
"""


def switch_interval_of_a_worker(tmp_path: Path, database_url: str) -> float:
    """Start ``imagegate worker``, stop it with SIGTERM once its loops run; its switch interval."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RECORDER)
    recorded = tmp_path / "switch-interval"
    env = child_env(
        IMAGEGATE_DATABASE_URL=database_url,
        IMAGEGATE_DATA_DIR=str(tmp_path / "data"),
        IMAGEGATE_LOG_JSON="true",
        SWITCH_INTERVAL_FILE=str(recorded),
        PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [IMAGEGATE, "worker", "--concurrency", "2"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while '"worker.started"' not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return float(recorded.read_text())


def test_a_worker_on_postgresql_hands_the_gil_over_within_half_a_millisecond(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    assert switch_interval_of_a_worker(tmp_path, fresh_pg_url) == 0.0005


def test_a_worker_on_sqlite_keeps_pythons_switch_interval(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    assert switch_interval_of_a_worker(tmp_path, url) == pytest.approx(0.005)
