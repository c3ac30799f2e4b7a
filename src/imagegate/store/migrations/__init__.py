"""Alembic's environment and the schema's migrations (``versions/``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["earlier"]

VERSIONS = Path(__file__).with_name("versions")


def earlier(file_name: str) -> ModuleType:
    """An earlier migration of ``versions/``, loaded by its file name (``0015_….py``), for a
    later one that builds its SQL from the earlier one's text or restores it on downgrade.
    Migration modules cannot be imported by name: theirs start with a digit."""
    path = VERSIONS / file_name
    spec = importlib.util.spec_from_file_location(f"imagegate_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
