"""Every file the package needs at run time that is not Python is declared as package data.

An editable install reads the source tree, so a file missing from ``package-data`` works here
and is absent from a built wheel: ``imagegate serve`` would not start from an installed package.
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "imagegate"


def test_every_non_python_file_in_the_package_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["imagegate"]
    files = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert files
    missing = [name for name in files if not any(fnmatch(name, p) for p in patterns)]
    assert missing == []
