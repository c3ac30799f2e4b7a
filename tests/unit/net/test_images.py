"""Input images: magic-byte sniffing, data: URIs, and downloads through the guard."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest
from pytest_httpserver import HTTPServer

from imagegate.net.guard import OutboundPolicy
from imagegate.net.images import InputImageError, make_input_fetcher, sniff_image_type

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 40
HTML = b"<!doctype html><script>alert(1)</script>"
HOST = "img.example.test"
LOCAL = OutboundPolicy(allow_http=True, allow_networks=["127.0.0.0/8"])


async def resolve(host: str, port: int) -> Sequence[str]:
    if host != HOST:
        raise OSError("Name or service not known")
    return ["127.0.0.1"]


def data_uri(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (GIF, "image/gif"),
        (b"GIF87a" + b"\x00" * 10, "image/gif"),
        (HTML, None),
        (b"", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"\x89PNG", None),
        (b"%PDF-1.7", None),
    ],
)
def test_sniff_image_type(data: bytes, expected: str | None) -> None:
    assert sniff_image_type(data) == expected


async def test_data_uri_is_decoded_and_typed_by_its_bytes() -> None:
    fetch = make_input_fetcher(OutboundPolicy(), max_bytes=1000)
    uri = data_uri(PNG, "image/jpeg")  # the declared type is ignored
    got = await fetch(uri)
    assert (got.data, got.content_type, got.url) == (PNG, "image/png", uri)
    wrapped = "data:image/webp;base64," + "\n".join(
        base64.b64encode(WEBP).decode()[i : i + 20] for i in range(0, 80, 20)
    )
    assert (await fetch(wrapped)).content_type == "image/webp"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (data_uri(HTML), "the data: URI is not a PNG, JPEG, WebP or GIF image"),
        (data_uri(PNG, "text/html"), "must be data:image/<type>;base64,<data>"),
        ("data:image/png," + PNG.hex(), "must be data:image/<type>;base64,<data>"),
        ("data:image/png;base64", "has no ','"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        (data_uri(PNG + b"\x00" * 2000), "larger than 1000 bytes"),
    ],
)
async def test_bad_data_uris_are_refused(uri: str, message: str) -> None:
    fetch = make_input_fetcher(OutboundPolicy(), max_bytes=1000)
    with pytest.raises(InputImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await fetch(uri)


async def test_downloaded_image_is_typed_by_its_bytes(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/in.bin").respond_with_data(JPEG, content_type="text/plain")
    fetch = make_input_fetcher(LOCAL, max_bytes=1000, timeout=5, resolver=resolve)
    url = f"http://{HOST}:{httpserver.port}/in.bin"
    got = await fetch(url)
    assert (got.data, got.content_type, got.url) == (JPEG, "image/jpeg", url)


async def test_disguised_non_image_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cat.png").respond_with_data(HTML, content_type="image/png")
    fetch = make_input_fetcher(LOCAL, max_bytes=1000, timeout=5, resolver=resolve)
    with pytest.raises(InputImageError, match=r"/cat\.png' is not a PNG, JPEG, WebP or GIF image"):
        await fetch(f"http://{HOST}:{httpserver.port}/cat.png")


async def test_guard_refusals_become_input_image_errors(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big.png").respond_with_data(PNG + b"\x00" * 5000)
    httpserver.expect_request("/moved.png").respond_with_data(
        "", status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    httpserver.expect_request("/down.png").respond_with_data("", status=502)
    base = f"http://{HOST}:{httpserver.port}"
    fetch = make_input_fetcher(LOCAL, max_bytes=1000, timeout=5, resolver=resolve)

    with pytest.raises(InputImageError, match="is larger than 1000 bytes") as big:
        await fetch(f"{base}/big.png")
    assert not big.value.retryable
    with pytest.raises(InputImageError, match=r"redirect \(HTTP 301"):
        await fetch(f"{base}/moved.png")
    with pytest.raises(InputImageError, match="answered HTTP 502") as down:
        await fetch(f"{base}/down.png")
    assert down.value.retryable

    strict = make_input_fetcher(OutboundPolicy(), max_bytes=1000)
    with pytest.raises(InputImageError, match=r"is a private address \(10\.0\.0\.1\)"):
        await strict("https://10.0.0.1/a.png")
    with pytest.raises(InputImageError, match="must use https"):
        await strict(f"{base}/big.png")
    assert [r.path for r, _ in httpserver.log] == ["/big.png", "/moved.png", "/down.png"]
