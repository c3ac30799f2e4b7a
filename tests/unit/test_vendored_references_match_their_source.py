"""Every part of the reference folder the tests keep a copy of still equals its source.

The suite reads only its copies (so it runs without the reference folder); each copy is written by
an extractor script beside it. When the reference folder is beside the repository (``../shared``,
as on a developer's machine and in CI), each extractor runs again here and its output must equal
the committed copy: a refreshed vendor description then fails here until the copy is rewritten.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).parents[1]
REFERENCE = TESTS.parents[1] / "shared" / "reference"

pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(),
    reason=f"the reference folder is not beside the repository ({REFERENCE})",
)


def _script(path: Path) -> ModuleType:
    """An extractor script, loaded from its file (its folder is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_apiframe_response_schemas_equal_apiframes_document() -> None:
    extractor = _script(TESTS / "reference" / "extract_apiframe.py")
    vendored = json.loads((TESTS / "reference" / "apiframe_schemas.json").read_text())
    assert vendored == extractor.extract(REFERENCE / "apiframe-openapi.json")
    assert vendored["source"] == "reference/apiframe-openapi.json"


def test_the_apiframe_request_schema_equals_apiframes_document() -> None:
    vendored = json.loads(
        (TESTS / "unit" / "catalog" / "apiframe_generate_request.json").read_text()
    )
    document = json.loads((REFERENCE / "apiframe-openapi.json").read_text())
    assert (
        vendored["GenerateImageRequest"]
        == document["components"]["schemas"]["GenerateImageRequest"]
    )
    assert vendored["info"] == document["info"]
    assert vendored["source"].startswith("apiframe-openapi.json")


def test_the_vendor_enums_equal_the_vendor_descriptions() -> None:
    extractor = _script(TESTS / "unit" / "catalog" / "vendor" / "extract_enums.py")
    vendored = json.loads((TESTS / "unit" / "catalog" / "vendor" / "enums.json").read_text())
    assert vendored == extractor.extract(REFERENCE / "upstream")


@pytest.mark.parametrize("name", ["extract_openai_ideogram.py", "extract_bfl_replicate.py"])
def test_the_vendor_request_schemas_equal_the_vendor_descriptions(
    name: str, tmp_path: Path
) -> None:
    folder = TESTS / "integration" / "providers" / "schemas"
    _script(folder / name).main(REFERENCE / "upstream", tmp_path)
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written
    for filename in written:
        assert (tmp_path / filename).read_text() == (folder / filename).read_text(), filename
