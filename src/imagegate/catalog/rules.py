"""Per-model rules that one shared params schema cannot express.

Apiframe publishes one params object per family (``fluxParams`` serves six models), so a limit that
only one model has — FLUX.2 [dev] takes at most 5 reference images, Seedream 3 takes none — is a
rule on that model's spec. Each factory returns a ``RuleCheck`` that names the offending JSON path
(``"fluxParams.input_images"``) so the client sees the same shape of error as a schema violation.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from imagegate.catalog.spec import RuleCheck

__all__ = ["excludes", "max_items", "one_of", "requires", "unsupported", "within"]


def _value(params: BaseModel | None, name: str) -> object:
    return getattr(params, name, None) if params is not None else None


def max_items(key: str, name: str, limit: int, model_id: str) -> RuleCheck:
    """At most ``limit`` items in the list field ``name`` (``0`` means the model takes none)."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        value = _value(params, name)
        if not isinstance(value, list) or len(value) <= limit:
            return {}
        if limit == 0:
            return {f"{key}.{name}": [f"is not supported by {model_id}"]}
        return {f"{key}.{name}": [f"must have at most {limit} items for {model_id}"]}

    return check


def unsupported(key: str, name: str, model_id: str) -> RuleCheck:
    """The field belongs to the family's schema but this model ignores it: refuse, don't drop."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        if _value(params, name) is None:
            return {}
        return {f"{key}.{name}": [f"is not supported by {model_id}"]}

    return check


def within(key: str, names: tuple[str, ...], low: int, high: int, model_id: str) -> RuleCheck:
    """Integer fields whose range for this model is narrower than the family's schema range."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        problems: dict[str, list[str]] = {}
        for name in names:
            value = _value(params, name)
            if isinstance(value, int) and not low <= value <= high:
                problems[f"{key}.{name}"] = [f"must be between {low} and {high} for {model_id}"]
        return problems

    return check


def requires(key: str, name: str, needed: str) -> RuleCheck:
    """``name`` only makes sense together with ``needed`` (an inpainting mask needs its image)."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        if _value(params, name) is None or _value(params, needed) is not None:
            return {}
        return {f"{key}.{needed}": [f"is required when {name} is set"]}

    return check


def one_of(key: str, name: str, allowed: tuple[str, ...], model_id: str) -> RuleCheck:
    """A string field whose accepted values for this model are a subset of the family's enum."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        value = _value(params, name)
        if value is None or value in allowed:
            return {}
        return {f"{key}.{name}": [f"must be one of {', '.join(allowed)} for {model_id}"]}

    return check


def excludes(key: str, name: str, other: str, why: str, *, default: object = None) -> RuleCheck:
    """``name`` (unless at its ``default``) cannot be honoured together with ``other``: the
    request ``other`` selects has no such input (an inpainting edit keeps its image's shape)."""

    def check(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
        if _value(params, name) in (None, default) or _value(params, other) is None:
            return {}
        return {f"{key}.{name}": [f"is not supported together with {other} ({why})"]}

    return check
