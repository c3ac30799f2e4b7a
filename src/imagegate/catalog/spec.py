"""What one catalog entry is: a model id, its params object, what it can do, what it costs.

A family module (``catalog/families/flux.py`` …) declares one pydantic params model per params key
(``fluxParams`` …) with ``extra="forbid"`` and the exact fields, enums and ranges of Apiframe's
published schema, then one ``ModelSpec`` per model id. The spec owns what a user may ask for and
what it costs, and each route carries the model's own input table for vendors that need one
(``RouteInputs``: fal, Replicate, DashScope); the adapter owns how the vendor is asked (see
``imagegate.providers.port``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel

from imagegate.types import Credits, Route

__all__ = [
    "Capabilities",
    "ModelSpec",
    "PriceOverrides",
    "Pricing",
    "RuleCheck",
]

PriceOverrides = Mapping[str, Mapping[str, int]]
"""Operator price overrides: model id → price point name → credits (from the config file)."""

RuleCheck = Callable[[BaseModel | None, str], Mapping[str, list[str]]]
"""A cross-field rule: (params or None, prompt) → offending JSON paths and messages (empty = ok)."""


@dataclass(frozen=True)
class Pricing:
    """A price in integer credits, computed from the validated params.

    ``points`` names every price the model has (``{"default": 16}`` or
    ``{"low": 4, "medium": 9, "high": 24, "auto": 24}``); ``select`` picks the point for a request;
    with ``per_output`` the point is multiplied by the number of images. Operators override points
    by name in the config file. ``source`` says where each number came from (shown in docs).
    """

    points: Mapping[str, Credits]
    select: Callable[[BaseModel | None], str] = lambda _params: "default"
    per_output: bool = False
    source: str = ""

    def point(self, name: str, overrides: Mapping[str, int] | None = None) -> Credits:
        if overrides and name in overrides:
            return int(overrides[name])
        return self.points[name]

    def bounds(self, overrides: Mapping[str, int] | None, max_outputs: int) -> tuple[int, int]:
        values = [self.point(name, overrides) for name in self.points]
        high = max(values) * (max_outputs if self.per_output else 1)
        return min(values), high


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, shown in ``GET /v2/models``."""

    text_to_image: bool = True
    image_input: bool = False
    editing: bool = False
    max_input_images: int = 0
    max_resolution: str | None = None
    max_outputs: int = 1

    def public(self) -> dict[str, Any]:
        return {
            "textToImage": self.text_to_image,
            "imageInput": self.image_input,
            "editing": self.editing,
            "maxInputImages": self.max_input_images,
            "maxResolution": self.max_resolution,
            "maxOutputs": self.max_outputs,
        }


def _one_output(_params: BaseModel | None) -> int:
    return 1


@dataclass(frozen=True)
class ModelSpec:
    """One model id of the public API.

    ``params`` is the params model class; ``params_key`` the request field that carries it.
    ``outputs(params)`` is the number of images a job returns (used for pricing and checks).
    ``rules`` are cross-field checks that a JSON schema cannot express (a required reference
    image, a per-model maximum of input images, …). ``routes`` are tried in order by the router.
    ``grid`` marks Midjourney-style results (four images plus a ``gridUrl``).
    """

    id: str
    label: str
    family: str
    params_key: str
    params: type[BaseModel]
    description: str
    pricing: Pricing
    capabilities: Capabilities = field(default_factory=Capabilities)
    routes: tuple[Route, ...] = ()
    outputs: Callable[[BaseModel | None], int] = _one_output
    rules: tuple[RuleCheck, ...] = ()
    prompt_max_length: int = 2000
    params_required: bool = False
    grid: bool = False
    modality: Literal["image"] = "image"
    retired_upstream: str | None = None
    """ISO date the vendor retired the model, if it did (served through substitutes then)."""
    substitutes: tuple[Route, ...] = ()
    """Routes to a different upstream model that stands in for a retired one, used after every
    real route and only while ``allow_substitutes`` is on; the job's ``servedBy`` shows them."""
    retired_routes: tuple[Route, ...] = ()
    """Routes whose upstream model is gone (the vendor answers 404): never chosen, kept only so
    an operator's route override naming one of them takes its input table."""

    def resolve(self, route: Route) -> Route:
        """``route`` with this model's input table for it.

        An operator's route (``IMAGEGATE_ROUTES``) names only a provider and an upstream id: it
        takes the inputs of the catalog route with the same name, else of this model's first
        catalog route on the same provider (a newer id of the same vendor model).
        """
        if route.inputs is not None:
            return route
        own = [
            known
            for known in (*self.routes, *self.substitutes, *self.retired_routes)
            if known.provider == route.provider
        ]
        for known in own:
            if known == route:
                return known
        for known in own:
            if known.inputs is not None:
                return replace(route, inputs=known.inputs)
        return route

    @property
    def pricing_mode(self) -> Literal["flat", "per-output"]:
        return "per-output" if self.pricing.per_output else "flat"

    def price(self, params: BaseModel | None, overrides: PriceOverrides | None = None) -> Credits:
        """Credits charged for one job with these (validated) params."""
        own = (overrides or {}).get(self.id)
        unit = self.pricing.point(self.pricing.select(params), own)
        return unit * self.outputs(params) if self.pricing.per_output else unit

    def cost_range(self, overrides: PriceOverrides | None = None) -> tuple[Credits, Credits]:
        return self.pricing.bounds((overrides or {}).get(self.id), self.capabilities.max_outputs)

    def check(self, params: BaseModel | None, prompt: str) -> dict[str, list[str]]:
        """Run the cross-field rules, then ask whether any route can send these params; returns
        offending paths (empty when the request is fine)."""
        problems: dict[str, list[str]] = {}
        for rule in self.rules:
            for path, messages in rule(params, prompt).items():
                problems.setdefault(path, []).extend(messages)
        if not problems:
            for name, message in self.refusals(params).items():
                path = f"{self.params_key}.{name}" if name else self.params_key
                problems[path] = [f"{message} for {self.id}"]
        return problems

    def refusals(self, params: BaseModel | None) -> dict[str, str]:
        """What the first route refuses when no route (substitutes included) takes ``params``;
        empty when one does. Keys are param names, ``""`` for the number of images. A field
        whose values every route able to send it lists is refused naming all those values."""
        values = params.model_dump(mode="json", exclude_none=True) if params is not None else {}
        outputs = self.outputs(params)
        routes = (*self.routes, *self.substitutes)
        first: dict[str, str] | None = None
        for route in routes:
            found = route.inputs.refusals(values, outputs) if route.inputs is not None else {}
            if not found:
                return {}
            first = found if first is None else first
        refused = dict(first or {})
        for name in refused:
            # When every route that can send ``name`` at all lists its values for it, the client
            # may send any of those: name them all, not the first route's alone.
            senders = [r for r in routes if r.inputs is None or name not in r.inputs.refuses]
            tables = [r.inputs.values.get(name) if r.inputs else None for r in senders]
            if name and tables and all(table is not None for table in tables):
                allowed = dict.fromkeys(value for table in tables for value in table or ())
                if values.get(name) not in allowed:  # else another param sends it elsewhere
                    refused[name] = f"must be one of {', '.join(map(str, allowed))}"
        return refused
