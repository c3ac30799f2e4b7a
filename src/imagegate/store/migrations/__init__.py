"""Alembic's environment and the schema's migrations (``versions/``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["changed", "earlier"]

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


def changed(sql: str, changes: Sequence[tuple[str, str]]) -> str:
    """``sql`` with each ``(before, after)`` of ``changes`` applied in turn: how a migration
    states what it changes in an earlier one's function. Each ``before`` must be found exactly
    once, so a change never lands in the wrong place or silently nowhere."""
    for before, after in changes:
        assert sql.count(before) == 1, before
        sql = sql.replace(before, after)
    return sql
