"""Where each model takes OpenAI's parameters is read once per model spec, and only reused for
that spec: a catalog built again (other prices, another process's settings) gets its own."""

from __future__ import annotations

from imagegate.catalog.registry import build_catalog
from imagegate.services.openai_images import build_body, param_map


def test_a_map_is_read_once_and_serves_only_its_own_spec() -> None:
    first, second = build_catalog(), build_catalog()
    old, new = first.get("gpt-image-1.5"), second.get("gpt-image-1.5")
    assert old is not None and new is not None and old is not new

    assert param_map(old) is param_map(old)
    assert param_map(new).spec is new
    assert param_map(old).spec is old


def test_a_mapped_request_keeps_what_the_model_allows() -> None:
    spec = build_catalog().get("gpt-image-1.5")
    assert spec is not None
    mapping = param_map(spec)
    body = build_body(mapping, {"model": spec.id, "prompt": "p", "size": "1536x1024"})
    assert body[spec.params_key]["aspect_ratio"] == "3:2"
    assert build_body(mapping, {"model": spec.id, "quality": "standard"}) == {"model": spec.id}
