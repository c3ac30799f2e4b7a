"""The catalog of every model: lookup, request validation and the request union for OpenAPI.

Validation runs in two steps so error paths stay precise: first ``model`` is looked up, then the
body is validated against that model's own request class (one named class per model id, all with
``extra="forbid"`` and strict types). Errors come back as ``ValidationFailed`` whose ``details`` map
JSON paths (``"fluxParams.steps"``) to short rule messages (``"must be ≤ 50"``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from imagegate.catalog.fields import Uri
from imagegate.catalog.spec import ModelSpec, PriceOverrides
from imagegate.errors import ValidationFailed
from imagegate.types import Credits

__all__ = ["Catalog", "GenerateRequest", "build_catalog", "describe_errors"]

WebhookEventName = Literal["progress", "completed", "failed"]
DEFAULT_WEBHOOK_EVENTS: tuple[str, ...] = ("completed", "failed")


@dataclass(frozen=True)
class GenerateRequest:
    """A validated ``POST /v2/images/generate`` body."""

    spec: ModelSpec
    prompt: str
    params: BaseModel
    webhook_url: str | None
    webhook_events: tuple[str, ...]
    body: Mapping[str, Any]

    @property
    def params_dict(self) -> dict[str, Any]:
        """The params with defaults applied, as the adapter receives them."""
        return self.params.model_dump(mode="json", exclude_none=True)


def _class_name(model_id: str) -> str:
    words = re.split(r"[^0-9a-zA-Z]+", model_id)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "Request"


def _request_class(spec: ModelSpec) -> type[BaseModel]:
    return _request_class_of(
        spec.id,
        spec.params,
        spec.params_required,
        spec.params_key,
        spec.prompt_max_length,
        f"Generate with {spec.label}: {spec.description}",
    )


@functools.lru_cache(maxsize=1024)
def _request_class_of(
    model_id: str,
    params: type[BaseModel],
    params_required: bool,
    params_key: str,
    prompt_max_length: int,
    doc: str,
) -> type[BaseModel]:
    """Built once per process for the same inputs: building a pydantic class costs ~2 ms, and
    every catalog (one per runtime) holds one per model."""
    params_type: Any = params if params_required else params | None
    params_default: Any = ... if params_required else None
    fields: dict[str, Any] = {
        "prompt": (
            Annotated[str, Field(min_length=1, max_length=prompt_max_length)],
            ...,
        ),
        "model": (Literal[model_id], ...),
        "webhookUrl": (Uri | None, None),
        "webhookEvents": (
            Annotated[list[WebhookEventName] | None, Field(min_length=1)],
            None,
        ),
        params_key: (params_type, params_default),
    }
    return create_model(
        _class_name(model_id),
        __config__=ConfigDict(extra="forbid", strict=True, title=f"{model_id} request"),
        __doc__=doc,
        **fields,
    )


_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be a boolean",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "none_required": "must be null",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}"
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        if ctx["min_length"] == 1:
            return "must not be empty"
        return f"must be at least {ctx['min_length']} characters"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} items"
    if kind == "too_short":
        if ctx["min_length"] == 1:
            return "must have at least 1 item"
        return f"must have at least {ctx['min_length']} items"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "enum":
        return f"must be one of {ctx['expected']}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx['pattern']}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def describe_errors(
    errors: Sequence[ErrorDetails], prefix: Iterable[str | int] = ()
) -> dict[str, list[str]]:
    """Turn pydantic errors into ``{"json.path": ["rule", …]}``."""
    details: dict[str, list[str]] = {}
    for error in errors:
        loc = [*prefix, *error["loc"]]
        path = ".".join(str(part) for part in loc) or "body"
        message = _message(error)
        if message not in details.setdefault(path, []):
            details[path].append(message)
    return details


class Catalog:
    """Every model the gateway serves, with its request class and price."""

    def __init__(
        self, specs: Iterable[ModelSpec], price_overrides: PriceOverrides | None = None
    ) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.id in self._specs:
                raise ValueError(f"model {spec.id!r} is declared twice")
            self._specs[spec.id] = spec
        self._requests = {spec.id: _request_class(spec) for spec in self._specs.values()}
        self._keys = {spec.params_key for spec in self._specs.values()}
        self.price_overrides: PriceOverrides = price_overrides or {}

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def get(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def request_class(self, model_id: str) -> type[BaseModel]:
        return self._requests[model_id]

    def request_union(self) -> Any:
        """The body type of ``POST /v2/images/generate``: a union discriminated on ``model``."""
        members = tuple(self._requests.values())
        return Annotated[Union[members], Field(discriminator="model")]  # noqa: UP007

    def price(self, spec: ModelSpec, params: BaseModel | None) -> Credits:
        return spec.price(params, self.price_overrides)

    def cost_range(self, spec: ModelSpec) -> tuple[Credits, Credits]:
        return spec.cost_range(self.price_overrides)

    def parse(self, body: Any) -> GenerateRequest:
        """Validate a decoded JSON body; raises ``ValidationFailed`` naming every offending path."""
        if not isinstance(body, dict):
            raise ValidationFailed.field("body", "must be a JSON object")
        model_id = body.get("model")
        if "model" not in body:
            raise ValidationFailed.field("model", "is required")
        if not isinstance(model_id, str):
            raise ValidationFailed.field("model", "must be a string")
        spec = self._specs.get(model_id)
        if spec is None:
            raise ValidationFailed.field(
                "model", f"unknown model {model_id!r}; GET /v2/models lists the models"
            )
        try:
            request = self._requests[model_id].model_validate(body)
        except ValidationError as exc:
            details = describe_errors(exc.errors())
            for key in list(details):
                # Another model's params object, or a guess at this one's name ("flux2Params").
                guessed = key in self._keys or key.endswith("Params")
                if guessed and details[key] == ["unknown field"]:
                    details[key] = [f"is not a parameter of {model_id} (use {spec.params_key})"]
            raise ValidationFailed(details) from None
        params = getattr(request, spec.params_key) or spec.params()
        prompt: str = request.prompt  # type: ignore[attr-defined]
        problems = spec.check(params, prompt)
        if problems:
            raise ValidationFailed(problems)
        events = request.webhookEvents  # type: ignore[attr-defined]
        webhook_url = request.webhookUrl  # type: ignore[attr-defined]
        return GenerateRequest(
            spec=spec,
            prompt=prompt,
            params=params,
            webhook_url=webhook_url,
            webhook_events=tuple(events) if events else DEFAULT_WEBHOOK_EVENTS,
            body=body,
        )

    def public(self, spec: ModelSpec, *, available: bool = True) -> dict[str, Any]:
        """The ``GET /v2/models`` entry."""
        low, high = self.cost_range(spec)
        return {
            "id": spec.id,
            "label": spec.label,
            "modality": spec.modality,
            "description": spec.description,
            "costMin": low,
            "costMax": high,
            "pricingMode": spec.pricing_mode,
            "paramsKey": spec.params_key,
            "capabilities": spec.capabilities.public(),
            "available": available,
        }


def build_catalog(price_overrides: PriceOverrides | None = None) -> Catalog:
    """The full catalog, from every family module."""
    from imagegate.catalog.families import all_specs

    return Catalog(all_specs(), price_overrides)
