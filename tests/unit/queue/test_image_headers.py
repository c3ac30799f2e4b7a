"""What an output's header says: the formats served are identified with their size, any other
format Pillow knows is named in the refusal, and a file that is no image is refused as such."""

from __future__ import annotations

import io

import pytest

from imagegate.errors import UpstreamRejected
from imagegate.queue.ingest import ImageInfo, inspect_image
from tests.images import image_bytes


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [
        ("PNG", "image/png", "png"),
        ("JPEG", "image/jpeg", "jpg"),
        ("WEBP", "image/webp", "webp"),
        ("GIF", "image/gif", "gif"),
    ],
)
def test_a_served_format_is_identified_with_its_size(fmt: str, content_type: str, ext: str) -> None:
    data = image_bytes((37, 21), fmt=fmt)
    expected = ImageInfo(content_type, ext, 37, 21)
    assert inspect_image(data) == expected
    assert inspect_image(io.BytesIO(data)) == expected  # a spooled download is a file


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO"])
def test_another_format_is_named_in_the_refusal(fmt: str) -> None:
    with pytest.raises(UpstreamRejected, match=rf"unsupported image format \({fmt}\)"):
        inspect_image(image_bytes((16, 16), fmt=fmt))
    with pytest.raises(UpstreamRejected, match=rf"unsupported image format \({fmt}\)"):
        inspect_image(io.BytesIO(image_bytes((16, 16), fmt=fmt)))


def test_a_file_that_is_no_image_is_refused_as_such() -> None:
    with pytest.raises(UpstreamRejected, match="not an image"):
        inspect_image(b"%PDF-1.7 not a picture")
