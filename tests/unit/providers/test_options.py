"""Provider options are checked when the runtime is built: a typo stops start-up, naming itself."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from imagegate.providers.registry import module_name, vendors
from imagegate.runtime import build_runtime
from imagegate.settings import Settings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "providers.md"

EVERY_OPTION: dict[str, dict[str, Any]] = {
    "openai": {
        "organization": "org-1",
        "project": "proj_1",
        "models": {"dall-e-3": "gpt-image-1.5"},
        "dalle3_quality": "hd",
    },
    "xai": {"resolution": "2k", "send_input_urls": True, "models": {"a": "b"}},
    "reve": {"version": "latest", "test_time_scaling": 3, "postprocessing": [{"process": "x"}]},
    "gemini": {"models": {"a": "b"}, "fixed_size_models": ["gemini-2.5-flash-image"]},
    "ideogram": {"models": {"V_3": "V_3"}},
    "ark": {
        "region": "volcengine",
        "models": {"a": "b"},
        "watermark": True,
        "response_format": "url",
        "inline_inputs": True,
    },
    "bfl": {
        "region": "eu",
        "models": {"a": "b"},
        "safety_tolerance": 3,
        "inline_inputs": True,
        "poll_interval": 1.5,
    },
    "dashscope": {
        "region": "cn",
        "workspace": "ws-1",
        "modes": {"qwen-image": "synthesis"},
        "edit_model": "qwen-image-edit-max",
        "watermark": True,
        "inline_inputs": True,
        "poll_interval": 3,
    },
    "kling": {
        "access_key": "ak",
        "secret_key": "sk",
        "resolution": "2k",
        "image_reference": "face",
        "inline_inputs": True,
        "poll_interval": 3,
    },
    "midjourney": {"speed": "fast"},
    "replicate": {"wait": 10, "cancel_after": "10m"},
    "fal": {},
    "sandbox": {"latency": 0.5, "steps": 5, "max_side": 512, "submit_log": "submits.log"},
}
"""A value for every option each vendor declares (``base_url`` is set where a vendor needs it)."""


def _settings(tmp_path: Path, name: str, options: dict[str, Any]) -> Settings:
    provider: dict[str, Any] = {"api_key": "k", "options": options}
    if name == "midjourney":
        provider["base_url"] = "http://relay.test"
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path,
        providers={name: provider},
    )


def _declared(name: str) -> set[str]:
    return set(importlib.import_module(module_name(name)).Options.model_fields)


def _documented() -> dict[str, set[str]]:
    """Vendor → the option names in its ``| Option | Default | Meaning |`` table."""
    text = DOCS.read_text(encoding="utf-8")
    found: dict[str, set[str]] = {}
    for section in re.split(r"\n### |\n## 6\. The ", text)[1:]:
        name = section.split()[0]
        table = section.partition("| Option | Default | Meaning |")[2]
        rows = re.findall(r"^\| (`[^|]*) \|", table.partition("\n\n")[0], re.MULTILINE)
        found[name] = {n for row in rows for n in re.findall(r"`([a-z0-9_]+)`", row)}
    return found


def test_every_vendor_declares_its_options_and_the_example_covers_them() -> None:
    assert sorted(EVERY_OPTION) == vendors()
    for name, options in EVERY_OPTION.items():
        assert set(options) == _declared(name), name


def test_the_documented_options_are_exactly_the_declared_ones() -> None:
    documented = _documented()
    for name in vendors():
        assert documented.get(name, set()) == _declared(name), name


@pytest.mark.parametrize("name", sorted(EVERY_OPTION))
def test_every_documented_option_is_accepted_at_start_up(tmp_path: Path, name: str) -> None:
    runtime = build_runtime(_settings(tmp_path, name, EVERY_OPTION[name]))
    assert runtime.providers.get(name).name == name


def test_a_misspelt_option_stops_start_up_naming_provider_option_and_allowed_names(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, "replicate", {"wiat": 10})
    with pytest.raises(ValueError) as caught:
        build_runtime(settings)
    message = str(caught.value)
    assert "providers.replicate.options" in message
    assert "unknown option 'wiat'" in message
    assert "allowed: cancel_after, wait" in message


def test_the_old_alias_option_name_is_refused_with_the_new_one_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "openai", {"model_aliases": {"dall-e-3": "gpt-image-1.5"}})
    with pytest.raises(ValueError, match=r"unknown option 'model_aliases' \(allowed: .*models"):
        build_runtime(settings)


def test_an_option_of_the_wrong_type_is_refused_naming_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "bfl", {"poll_interval": "soon"})
    with pytest.raises(ValueError, match=r"providers\.bfl\.options: option 'poll_interval'"):
        build_runtime(settings)


def test_an_unknown_provider_stops_start_up_listing_the_known_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "opneai", {})
    with pytest.raises(ValueError, match=r"providers\.opneai: unknown provider \(known: .*openai"):
        build_runtime(settings)
