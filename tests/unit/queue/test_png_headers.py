"""A PNG's header gets the answer Pillow gives, whoever reads it: the size of every PNG Pillow
opens, and the same refusal for every PNG it refuses.

A plain PNG in memory is read without Pillow (``ingest._plain_png``); a file (a spooled download)
is always read by Pillow, so each case compares the two."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import pytest
from PIL import Image, PngImagePlugin

from imagegate.errors import UpstreamRejected
from imagegate.queue import ingest
from imagegate.queue.ingest import ImageInfo, inspect_image

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(mode: str = "RGB", size: tuple[int, int] = (37, 21), **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def with_text() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a vendor's renderer")
    return info


def chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    check = zlib.crc32(kind + payload) if crc is None else crc
    return len(payload).to_bytes(4, "big") + kind + payload + check.to_bytes(4, "big")


def ihdr(data: bytes, **fields: int) -> bytes:
    """``data`` with IHDR's fields changed (its CRC made right again)."""
    header = bytearray(data[16:29])
    offsets = {"width": 0, "height": 4, "depth": 8, "colour": 9, "filter": 11, "interlace": 12}
    for name, value in fields.items():
        at = offsets[name]
        size = 4 if name in ("width", "height") else 1
        header[at : at + size] = value.to_bytes(size, "big")
    return data[:8] + chunk(b"IHDR", bytes(header)) + data[33:]


def after_ihdr(data: bytes, extra: bytes) -> bytes:
    return data[:33] + extra + data[33:]


def answer(read: Callable[[], ImageInfo]) -> ImageInfo | str:
    try:
        return read()
    except UpstreamRejected as exc:
        return f"refused: {exc}"


def assert_as_pillow(data: bytes) -> ImageInfo | str:
    here = answer(lambda: inspect_image(data))
    assert here == answer(lambda: inspect_image(io.BytesIO(data)))
    return here


@pytest.mark.parametrize(
    ("mode", "save"),
    [
        ("RGB", {}),
        ("RGBA", {}),
        ("L", {}),
        ("LA", {}),
        ("1", {}),
        ("P", {}),
        ("I;16", {}),
        ("RGB", {"dpi": (72, 72)}),  # a pHYs chunk, which Pillow parses
        ("RGB", {"pnginfo": with_text()}),  # a tEXt chunk, which Pillow parses
    ],
)
def test_a_png_pillow_opens_is_answered_with_its_size(mode: str, save: dict[str, object]) -> None:
    assert assert_as_pillow(png(mode, **save)) == ImageInfo("image/png", "png", 37, 21)


def test_a_plain_png_is_read_without_pillow() -> None:
    plain = png()
    assert ingest._plain_png(plain) == ImageInfo("image/png", "png", 37, 21)
    # After chunks Pillow skips unread (C2PA's caBX, private ones) too.
    marked = after_ihdr(plain, chunk(b"caBX", b"manifest" * 50) + chunk(b"prIv", b""))
    assert ingest._plain_png(marked) == ImageInfo("image/png", "png", 37, 21)
    assert assert_as_pillow(marked) == ImageInfo("image/png", "png", 37, 21)
    interlaced = ihdr(plain, interlace=1)
    assert ingest._plain_png(interlaced) == ImageInfo("image/png", "png", 37, 21)
    assert assert_as_pillow(interlaced) == ImageInfo("image/png", "png", 37, 21)


def test_the_modes_read_without_pillow_are_those_pillow_opens() -> None:
    assert frozenset(PngImagePlugin._MODES) == ingest._PNG_MODES


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda d: d[:29] + b"\x00\x00\x00\x00" + d[33:], id="IHDR's CRC wrong"),
        pytest.param(lambda d: ihdr(d, filter=1), id="unknown filter method"),
        pytest.param(lambda d: ihdr(d, depth=3), id="no such bit depth"),
        pytest.param(lambda d: ihdr(d, colour=5), id="no such colour type"),
        pytest.param(lambda d: ihdr(d, width=0), id="no width"),
        pytest.param(lambda d: ihdr(d, height=0), id="no height"),
        pytest.param(lambda d: d[:33], id="cut after IHDR"),
        pytest.param(lambda d: d[:37], id="cut inside the next chunk's header"),
        pytest.param(lambda d: after_ihdr(d, chunk(b"caBX", b"x" * 40, crc=7)), id="CRC wrong"),
        pytest.param(lambda d: after_ihdr(d, chunk(b"caBX", b"x" * 40))[:60], id="cut chunk"),
        pytest.param(lambda d: after_ihdr(d, chunk(b"ca!X", b"x")), id="not a chunk type"),
        pytest.param(lambda d: after_ihdr(d, chunk(b"gAMA", b"")), id="a chunk Pillow refuses"),
        pytest.param(lambda d: SIGNATURE + d[8:16] + d[16:28], id="IHDR cut short"),
    ],
)
def test_a_png_pillow_refuses_is_refused_the_same(broken: Callable[[bytes], bytes]) -> None:
    data = broken(png())
    assert ingest._plain_png(data) is None
    assert str(assert_as_pillow(data)).startswith("refused: ")


@pytest.mark.parametrize("limit", [300, 500])
def test_too_many_pixels_are_refused_as_pillow_refuses_them(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    # 37 × 21 = 777 pixels: past twice 300 Pillow refuses, between 500 and twice it warns.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    assert assert_as_pillow(png()) == (
        "refused: Provider returned an image with too many pixels to decode safely"
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 777)
    assert assert_as_pillow(png()) == ImageInfo("image/png", "png", 37, 21)
