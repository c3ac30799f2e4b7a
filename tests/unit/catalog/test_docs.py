"""``docs/models.md`` is generated from the catalog and must stay in step with it."""

from __future__ import annotations

from pathlib import Path

from imagegate.catalog import build_catalog
from imagegate.catalog.docs import main, render

REPO = Path(__file__).resolve().parents[3]


def test_committed_models_md_is_up_to_date() -> None:
    committed = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m imagegate.catalog.docs"


def test_every_model_has_a_row_with_its_price_source_and_routes() -> None:
    text = render()
    for spec in build_catalog():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{spec.id}` |"))
        assert f"`{spec.params_key}`" in row
        assert spec.pricing.source in row
        assert all(f"`{route}`" in row for route in spec.routes)


def test_prices_render_per_point_and_per_image() -> None:
    rows = {line.split(" | ")[0]: line for line in render().splitlines() if line.startswith("| `")}
    assert "| 16 |" in rows["| `midjourney`"]
    assert "low 4, medium 9, high 24, auto 24 per image" in rows["| `gpt-image-1.5`"]
    assert "retired upstream 2026-05-12" in rows["| `dall-e-3`"]


def test_entry_point_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "models.md"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render()
