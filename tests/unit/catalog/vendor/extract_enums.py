"""Rewrite ``enums.json``: the vendor enums the route value tables are checked against.

Tests read only ``enums.json``, never the reference folder or the network. Run this again when a
vendor's description changes (and update ``SOURCES`` to the new commit)::

    .venv/bin/python tests/unit/catalog/vendor/extract_enums.py <reference>/upstream

Each entry is copied unchanged from the named ``components/schemas`` property of the vendor's
OpenAPI document: an ``enum`` list, the ``description`` where the vendor states a range in words
(BFL's ultra ratio), or the property names where the test needs to know which fields exist;
for xAI, whose description is a protocol buffer file, the value names of two enums; for Gemini,
the ratios ``ImageConfig.aspect_ratio``'s comment lists in ``generative_service.proto`` and the
value names of the ``AspectRatio`` and ``ImageSize`` enums in the SDK's API report; for Reve, whose
only description is its SDK's README, the ``create`` table's cells for ``aspect_ratio`` and
``test_time_scaling``, unchanged; for DashScope, whose references are prose pages, the ``size``
values and the lines stating pixel and ratio bounds, unchanged.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SOURCES = {
    "openai": {
        "file": "openapi.json",
        "repository": "openai/openai-openapi",
        "commit": "f85dbe223d40e1a31cba812ab2d755c7e98a92a3",
    },
    "bfl": {
        "file": "src/libs/BlackForestLabs/openapi.json (from https://api.bfl.ai/openapi.json)",
        "repository": "tryAGI/BlackForestLabs",
        "commit": "bdbcd9adb9801eb0cd8ac8dacfc5abc22bd13fff",
    },
    "ideogram": {
        "file": "src/libs/Ideogram/openapi.json (from https://api.ideogram.ai/openapi.json)",
        "repository": "tryAGI/Ideogram",
        "commit": "bd27966cd46940fb8c6eecd58e4399c182bdbd4f",
    },
    "xai": {
        "file": "proto/xai/api/v1/image.proto",
        "repository": "xai-org/xai-proto",
        "commit": "d67bcf3e661aa9641af9750632fa1c38ea974da1",
    },
    "gemini": {
        "file": "google/ai/generativelanguage/v1beta/generative_service.proto",
        "repository": "googleapis/googleapis",
        "commit": "bc7e3baa28fbb223fa93782e130260fab8205bfc",
    },
    "gemini-sdk": {
        "file": "api-report/genai-node.api.md",
        "repository": "googleapis/js-genai",
        "commit": "124b606bc5be0d5e70673dc28e16e739c9a25d7c",
    },
    "dashscope": {
        "file": "skills/bailian-docs-llm-wiki/raw/model-api-reference/image-generation/"
        "{qwen-image-api,wan-image-generation-api-reference,"
        "wan-image-generation-and-editing-api-reference}.md",
        "repository": "modelstudioai/skills",
        "commit": "21b9d17bd07255d490f579288bfe241ff6cc749f",
    },
    "reve": {
        "file": "python/README.md",
        "repository": "reve-ai/reve-sdk",
        "commit": "03d28520e2263a3bcac07b8b13b0ae64b42d5687",
    },
}
PROTO_ENUMS = {"xai": ("image.proto", ("ImageAspectRatio", "ImageResolution"))}
"""Enums read from a protocol buffer file: the value names, in file order."""
WANTED: dict[str, dict[str, tuple[str, str | None, str]]] = {
    # entry name: (schema, property or None for the property names, what to copy)
    "openai": {
        "CreateImageRequest": ("CreateImageRequest", None, "properties"),
        "CreateImageEditRequest": ("CreateImageEditRequest", None, "properties"),
        "CreateImageRequest.size": ("CreateImageRequest", "size", "enum"),
        "CreateImageEditRequest.size": ("CreateImageEditRequest", "size", "enum"),
    },
    "bfl": {
        "FluxUltraInput.aspect_ratio": ("FluxUltraInput", "aspect_ratio", "description"),
    },
    "ideogram": {
        "AspectRatio": ("AspectRatio", None, "enum"),
        "AspectRatioV3": ("AspectRatioV3", None, "enum"),
        "Resolution": ("Resolution", None, "enum"),
        "ResolutionV3": ("ResolutionV3", None, "enum"),
        "ModelEnum": ("ModelEnum", None, "enum"),
        "GenerateImageRequestV4": ("GenerateImageRequestV4", None, "properties"),
    },
}


def _enum(node: dict[str, Any]) -> list[Any]:
    if "enum" in node:
        return list(node["enum"])
    for option in node.get("anyOf", ()):
        if "enum" in option:
            return list(option["enum"])
    raise KeyError("enum")


def _gemini(reference: Path) -> dict[str, Any]:
    proto = (reference / "gemini" / "generative_service.proto").read_text()
    block = re.search(r"message ImageConfig {(.*?)}", proto, re.S)
    assert block is not None
    listed = re.search(r"Supported aspect\s*//\s*ratios: ([^.]*)\.", block[1])
    assert listed is not None, block[1]
    report = (reference / "gemini" / "genai-node.api.md").read_text()
    out: dict[str, Any] = {
        "ImageConfig.aspect_ratio": [r.strip() for r in listed[1].split(",")],
    }
    for name in ("AspectRatio", "ImageSize"):
        enum = re.search(rf"export enum {name} {{(.*?)}}", report, re.S)
        assert enum is not None, name
        out[name] = re.findall(r"^\s*([A-Z0-9_]+) = ", enum[1], re.M)
    return out


def _reve(reference: Path) -> dict[str, Any]:
    readme = (reference / "reve" / "python-sdk-README.md").read_text()
    create = readme[readme.index("### `create(") :]
    out: dict[str, Any] = {}
    for name in ("aspect_ratio", "test_time_scaling"):
        row = re.search(rf"^\| `{name}` .*$", create, re.M)
        assert row is not None, name
        cells = re.split(r"(?<!\\)\|", row[0])  # a cell may hold an escaped ``\|``
        out[f"create.{name}"] = cells[-2].strip()
    return out


_SIZE = re.compile(r"`(\d+\*\d+)`")


def _dashscope(reference: Path) -> dict[str, Any]:
    qwen = (reference / "dashscope" / "qwen-image-api.md").read_text()
    size = qwen[qwen.index("**size** `_string_`") :]
    two = size[size.index("**qwen-image-2.0系列模型**") : size.index("**qwen-image-max、")]
    plus = size[size.index("**qwen-image-max、") : size.index("**属性**")]
    wan26 = (reference / "dashscope" / "wan-image-generation-api-reference.md").read_text()
    wan27 = reference / "dashscope" / "wan-image-generation-and-editing-api-reference.md"
    wan27_text = wan27.read_text()
    wan27_image = wan27_text[wan27_text.index("**模型：wan2.7-image**") :]

    def line(text: str, marker: str) -> str:
        found = re.search(rf"^.*{marker}.*$", text, re.M)
        assert found is not None, marker
        return found[0].strip(" -")

    return {
        "qwen-image-2.0.pixels": line(two, "总像素"),
        "qwen-image-2.0.recommended": _SIZE.findall(two.split("推荐分辨率")[1]),
        "qwen-image-max-plus.sizes": _SIZE.findall(plus),
        "wan2.6.interleave-off.pixels": line(wan26, r"总像素在 \\\[768\\\*768, 2048"),
        "wan2.6.interleave-on.pixels": line(wan26, r"总像素在 \\\[768\\\*768, 1280"),
        "wan2.7-image.pixels": line(wan27_image, "所有场景下"),
    }


def extract(reference: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"sources": SOURCES}
    for vendor, entries in WANTED.items():
        schemas = json.loads((reference / vendor / "openapi.json").read_text())["components"][
            "schemas"
        ]
        out[vendor] = {}
        for name, (schema, prop, what) in entries.items():
            node = schemas[schema] if prop is None else schemas[schema]["properties"][prop]
            if what == "properties":
                out[vendor][name] = sorted(node["properties"])
            elif what == "enum":
                out[vendor][name] = _enum(node)
            else:
                out[vendor][name] = node[what]
    for vendor, (file, names) in PROTO_ENUMS.items():
        text = (reference / vendor / file).read_text()
        out[vendor] = {}
        for name in names:
            block = re.search(rf"enum {name} {{(.*?)}}", text, re.S)
            assert block is not None, name
            out[vendor][name] = re.findall(r"^\s*([A-Z0-9_]+) = \d+;", block[1], re.M)
    out["gemini"] = _gemini(reference)
    out["reve"] = _reve(reference)
    out["dashscope"] = _dashscope(reference)
    return out


if __name__ == "__main__":
    (HERE / "enums.json").write_text(json.dumps(extract(Path(sys.argv[1])), indent=1) + "\n")
