"""Reusable field types for params models, matching the JSON Schema Apiframe publishes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, WithJsonSchema

__all__ = ["AspectRatio", "Uri", "check_uri"]


def check_uri(value: str) -> str:
    """Accept an absolute http(s) URL (or a ``data:`` URI); keep the text exactly as sent."""
    if value.startswith("data:"):
        if ";base64," not in value:
            raise ValueError("must be a valid URL or a base64 data: URI")
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be a valid http(s) URL")
    return value


Uri = Annotated[
    str,
    AfterValidator(check_uri),
    WithJsonSchema({"type": "string", "format": "uri"}),
]
"""An image URL. Kept as the exact string the client sent (no normalisation)."""

AspectRatio = Annotated[str, Field(pattern=r"^\d+:\d+$", examples=["16:9"])]
"""``W:H`` with integer sides, as Apiframe's schema writes it."""
