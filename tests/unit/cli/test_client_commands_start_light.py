"""The client commands start without importing the server side."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from imagegate.cli.main import main
sys.argv = ["imagegate", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
server = ("fastapi", "sqlalchemy", "imagegate.catalog", "imagegate.api")
heavy = sorted(m for m in server if m in sys.modules)
print("heavy:", ",".join(heavy))
"""


def loaded(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [("generate", "--help"), ("jobs", "watch", "--help")])
def test_a_client_command_imports_no_server_module(argv: tuple[str, ...]) -> None:
    assert loaded(*argv) == "heavy:"


def test_every_other_command_is_still_there() -> None:
    assert loaded("models", "--help") == "heavy: fastapi,imagegate.api,imagegate.catalog,sqlalchemy"
