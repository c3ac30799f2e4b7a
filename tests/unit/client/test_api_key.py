"""The key as the SDK sends it: trimmed, or refused by name when a header cannot carry it."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from imagegate.client import Client

ME = {"user": {}, "team": {}, "apiKey": {}}


def test_a_key_read_with_its_line_break_is_sent_without_it(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/me", headers={"X-API-Key": "ig_test_abc"}).respond_with_json(ME)
    with Client(httpserver.url_for(""), "ig_test_abc\n") as client:
        client.me()
    httpserver.check_assertions()


@pytest.mark.parametrize("key", ["ig_test_a\nb", "ig_test_a\x00b", "ig_test_é"])
def test_a_key_a_header_cannot_carry_is_refused_by_name(key: str) -> None:
    with pytest.raises(ValueError, match="api_key holds a line break"):
        Client("http://127.0.0.1:9", key)
