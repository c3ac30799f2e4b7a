"""``GET /v2/models`` (public) and ``GET /v2/models/{id}``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from imagegate.api.deps import RuntimeDep
from imagegate.errors import NotFound

__all__ = ["router"]

router = APIRouter(tags=["Models"])


@router.get("/v2/models", summary="List models")
async def list_models(
    runtime: RuntimeDep, modality: Literal["image", "video", "music"] | None = None
) -> dict[str, Any]:
    """Every model with its family, price range and capabilities. `available` is false when no
    upstream provider is configured for it (test keys can still run it on the sandbox)."""
    models = [
        {
            **runtime.catalog.public(spec, available=runtime.router.available(spec)),
            "family": spec.family,
        }
        for spec in runtime.catalog
        if modality in (None, spec.modality)
    ]
    return {"models": models}


@router.get("/v2/models/{model_id}", summary="Describe a model")
async def get_model(model_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    """One model, with the JSON Schema of its params object (defaults and examples included)."""
    spec = runtime.catalog.get(model_id)
    if spec is None:
        raise NotFound(f"Model {model_id!r} not found")
    return {
        **runtime.catalog.public(spec, available=runtime.router.available(spec)),
        "paramsSchema": spec.params.model_json_schema(),
        "promptMaxLength": spec.prompt_max_length,
        "paramsRequired": spec.params_required,
        "routes": [str(route) for route in spec.routes],
        "retiredUpstream": spec.retired_upstream,
    }
