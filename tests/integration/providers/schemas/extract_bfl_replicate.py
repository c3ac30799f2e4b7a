"""Regenerate the request schemas in this folder from the vendors' published API descriptions.

Run it with the vendors' reference tree at hand (tests never read it); the argument defaults to
``../shared/reference/upstream`` beside the repository, where the reference material is kept:

    .venv/bin/python tests/integration/providers/schemas/extract_bfl_replicate.py [REFERENCE]

Each output file is one JSON Schema, self-contained (every ``$ref`` inlined), for the body or the
query of one request an adapter sends. See ``README.md`` for what comes from where.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
REPOSITORY = HERE.parents[3]
DEFAULT_REFERENCE = REPOSITORY.parent / "shared" / "reference" / "upstream"

BFL_ENDPOINTS = (
    "flux-pro-1.1",
    "flux-pro-1.1-ultra",
    "flux-2-pro",
    "flux-2-max",
    "flux-2-flex",
    "flux-2-klein-4b",
    "flux-2-klein-9b",
)
"""Every BFL endpoint ``imagegate.providers.bfl`` maps a catalog route or documented alias to."""
SOURCES = {
    "BFL openapi.json": "tryAGI/BlackForestLabs src/libs/BlackForestLabs/openapi.json"
    " @ bdbcd9adb9801eb0cd8ac8dacfc5abc22bd13fff (from https://api.bfl.ai/openapi.json)",
    "Replicate openapi.json": "tryAGI/Replicate src/libs/Replicate/openapi.json"
    " @ 1625ee75404d20793ab2e419eeefb554d9a1652c (from https://api.replicate.com/openapi.json)",
}
"""Where each description was copied from: repository, path and commit (the reference README's
table). Update the commit when the reference copy is refreshed."""


def _resolve(node: Any, document: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (the documents have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = document
            for part in str(node["$ref"]).removeprefix("#/").split("/"):
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _resolve({**target, **rest}, document)
        return {key: _resolve(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, document) for item in node]
    return node


def _body(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["requestBody"]["content"]
    schema: dict[str, Any] = _resolve(content["application/json"]["schema"], document)
    return schema


def _parameters(document: dict[str, Any], path: str, method: str, where: str) -> dict[str, Any]:
    """The ``where`` (query/header) parameters of an operation as one object schema; each keeps
    the parameter's ``description``, where a vendor states limits its pattern does not."""
    operation = document["paths"][path][method]
    parameters = [_resolve(p, document) for p in operation.get("parameters", [])]
    chosen = [p for p in parameters if p["in"] == where]
    return {
        "type": "object",
        "properties": {
            p["name"]: {
                **({"description": p["description"]} if "description" in p else {}),
                **p["schema"],
            }
            for p in chosen
        },
        "required": [p["name"] for p in chosen if p.get("required")],
    }


def _write(out: Path, name: str, source: str, schema: dict[str, Any]) -> None:
    vendor = next(name for name in SOURCES if source.startswith(name))
    schema = {"$comment": f"extracted from {source}; {SOURCES[vendor]}", **schema}
    (out / name).write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n")


def main(reference: Path, out: Path = HERE) -> None:
    """Write every schema file into ``out`` (this folder unless a test asks for another)."""
    bfl = json.loads((reference / "bfl" / "openapi.json").read_text())
    source = "BFL openapi.json"
    for endpoint in BFL_ENDPOINTS:
        path = f"/v1/{endpoint}"
        _write(out, f"bfl_{endpoint}.json", f"{source} POST {path}", _body(bfl, path))
    _write(
        out,
        "bfl_get_result.query.json",
        f"{source} GET /v1/get_result parameters",
        _parameters(bfl, "/v1/get_result", "get", "query"),
    )

    replicate = json.loads((reference / "replicate" / "openapi.json").read_text())
    source = "Replicate openapi.json"
    models = "/models/{model_owner}/{model_name}/predictions"
    _write(
        out, "replicate_model_prediction.json", f"{source} POST {models}", _body(replicate, models)
    )
    _write(
        out,
        "replicate_version_prediction.json",
        f"{source} POST /predictions",
        _body(replicate, "/predictions"),
    )
    _write(
        out,
        "replicate_prediction.headers.json",
        f"{source} POST {models} header parameters",
        _parameters(replicate, models, "post", "header"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "reference",
        nargs="?",
        type=Path,
        default=DEFAULT_REFERENCE,
        help="the reference tree's upstream folder (default: ../shared/reference/upstream)",
    )
    main(parser.parse_args().reference)
