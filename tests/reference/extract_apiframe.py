"""Rewrite ``apiframe_schemas.json``: the Apiframe response schemas the tests validate against.

Tests read only ``apiframe_schemas.json``, never the reference folder. Run this again when
Apiframe's document changes::

    .venv/bin/python tests/reference/extract_apiframe.py <reference>/apiframe-openapi.json

Each schema is ``components.schemas.<name>`` of the document, copied unchanged (none of them
holds a ``$ref``). ``test_vendored_references_match_their_source.py`` checks the copy against
the source whenever the reference folder is beside the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SOURCE = "reference/apiframe-openapi.json"
NAMES = ("Me", "Job", "JobList", "JobAccepted")


def extract(document: Path) -> dict[str, Any]:
    """The vendored file's content, taken from Apiframe's OpenAPI ``document``."""
    description = json.loads(document.read_text(encoding="utf-8"))
    schemas = description["components"]["schemas"]
    return {
        "$comment": (
            f"components.schemas of {SOURCE} (Apiframe API {description['info']['version']}), "
            "copied unchanged by tests/reference/extract_apiframe.py"
        ),
        "source": SOURCE,
        "schemas": {name: schemas[name] for name in NAMES},
    }


if __name__ == "__main__":
    content = extract(Path(sys.argv[1]))
    (HERE / "apiframe_schemas.json").write_text(json.dumps(content, indent=1) + "\n")
