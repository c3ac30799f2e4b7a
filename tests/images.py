"""Small real images for tests: inputs, uploads and outputs of scripted upstreams."""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["image_bytes"]


def image_bytes(
    size: tuple[int, int] = (8, 8),
    colour: tuple[int, int, int] | str = (10, 200, 30),
    fmt: str = "PNG",
) -> bytes:
    """A plain ``size`` image of one ``colour``, encoded as ``fmt`` (PNG, JPEG, WEBP, GIF)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()
