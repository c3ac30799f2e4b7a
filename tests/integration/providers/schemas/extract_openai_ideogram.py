"""Regenerate the OpenAI and Ideogram request schemas in this folder from their OpenAPI files.

Tests never read the reference folder (or the network) at run time; they validate against the
JSON files written here. Run it again when a vendor's description changes::

    .venv/bin/python tests/integration/providers/schemas/extract_openai_ideogram.py \
        <reference>/upstream

Each schema is copied with every ``$ref`` inlined, ``example``/``examples`` and ``x-…`` extensions
dropped, and OpenAPI's ``nullable: true`` turned into JSON Schema's ``null`` type, so plain
``jsonschema`` validates with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WANTED = {
    "openai": {
        "openai_create_image.json": "CreateImageRequest",
        "openai_create_image_edit.json": "CreateImageEditRequest",
    },
    "ideogram": {
        "ideogram_generate.json": "GenerateImageRequest",
        "ideogram_edit.json": "EditImageRequest",
        "ideogram_remix.json": "RemixImageRequest",
        "ideogram_v3_generate.json": "GenerateImageRequestV3",
        "ideogram_v3_edit.json": "EditImageRequestV3",
        "ideogram_v3_remix.json": "RemixImageRequestV3",
        "ideogram_v4_generate.json": "GenerateImageRequestV4",
    },
}
SOURCES = {
    "openai": "openai/openai-openapi openapi.json @ f85dbe223d40e1a31cba812ab2d755c7e98a92a3",
    "ideogram": "tryAGI/Ideogram src/libs/Ideogram/openapi.json"
    " @ bd27966cd46940fb8c6eecd58e4399c182bdbd4f (from https://api.ideogram.ai/openapi.json)",
}
"""Where each description was copied from: repository, path and commit (the reference README's
table). Update the commit when the reference copy is refreshed."""
_DROPPED = {"example", "examples"}


def inline(node: Any, schemas: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with its ``$ref``s replaced by the schemas they name."""
    if isinstance(node, list):
        return [inline(item, schemas, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        if name in seen:
            raise ValueError(f"recursive schema {' -> '.join((*seen, name))}")
        resolved = inline(schemas[name], schemas, (*seen, name))
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**resolved, **inline(siblings, schemas, seen)}
    out = {
        key: inline(value, schemas, seen)
        for key, value in node.items()
        if key not in _DROPPED and not key.startswith("x-")
    }
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def main(reference: Path, out: Path = HERE) -> None:
    """Write every schema file into ``out`` (this folder unless a test asks for another)."""
    for vendor, files in WANTED.items():
        description = json.loads((reference / vendor / "openapi.json").read_text())
        schemas = description["components"]["schemas"]
        version = description.get("info", {}).get("version", "?")
        for filename, name in files.items():
            schema = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": name,
                "$comment": (
                    f"{vendor} openapi.json {version}, components/schemas/{name}; {SOURCES[vendor]}"
                ),
                **inline(schemas[name], schemas, (name,)),
            }
            (out / filename).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
