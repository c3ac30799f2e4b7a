"""The base class of every params object: strict, closed, and never ``null`` unless published so.

Apiframe's schema marks almost every param optional but not nullable: a client may leave
``seed`` out, yet ``"seed": null`` is a type error there. Pydantic spells "optional" as
``int | None = None``, which would accept ``null`` and publish ``anyOf: [integer, null]``. This base
keeps the Python spelling but rejects an explicit ``null`` (defaults are not validated, so leaving
the field out still works) and drops the ``null`` branch from the published JSON schema, so our
``GenerateImageRequest`` matches Apiframe's. Fields the schema really declares nullable (only
``gptImageParams.input_images``) are listed in ``NULLABLE``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["Params"]


def _drop_null_branches(schema: dict[str, Any], model: type[Any]) -> None:
    nullable: frozenset[str] = getattr(model, "NULLABLE", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        branches = prop.get("anyOf")
        if name in nullable or not branches:
            continue
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(branches):
            del prop["anyOf"]
            prop.update(kept[0])


class Params(BaseModel):
    """A params object (``fluxParams`` …): unknown fields and loose types are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_drop_null_branches)

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _reject_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("must not be null (leave the field out instead)")
        return value
