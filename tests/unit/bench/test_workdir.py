"""A scenario's working directory lives as long as the run that made it, or as the scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.gateway import RUN_DIR, workdir


def test_within_a_run_a_scenario_keeps_its_files_until_the_run_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_DIR, str(tmp_path))
    with workdir("igbench-e2e-") as work:
        (work / "image.png").write_bytes(b"x")
    assert work.parent == tmp_path
    assert work.name.startswith("igbench-e2e-")
    assert (work / "image.png").read_bytes() == b"x"


def test_alone_a_scenario_removes_its_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_DIR, raising=False)
    with workdir("igbench-e2e-") as work:
        (work / "image.png").write_bytes(b"x")
    assert not work.exists()
