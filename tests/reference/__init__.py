"""Parts of the reference folder the tests need, kept here so the suite runs without it.

Each file names its source; ``tests/unit/test_vendored_references_match_their_source.py`` checks
every copy against its source whenever the reference folder is beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["apiframe_schema"]


def apiframe_schema(name: str) -> dict[str, Any]:
    """One Apiframe schema (``Me``, ``Job``, ``JobList``, ``JobAccepted``) as the tests keep it."""
    path = Path(__file__).with_name("apiframe_schemas.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["schemas"][name]
    return schema
