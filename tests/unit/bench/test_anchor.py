"""The anchor is served by the same HTTP protocol class as ``imagegate serve``, so a share of
the anchor measures imagegate's own work, not a difference in how answers are written."""

from __future__ import annotations

from bench import anchor

from imagegate.api.protocol import header_deadline_protocol


def test_the_anchor_uses_imagegates_http_protocol_class() -> None:
    served = anchor.server_config("127.0.0.1", 0).http
    imagegates = header_deadline_protocol(10.0)

    assert isinstance(served, type)
    assert [c.__qualname__ for c in served.__mro__] == [c.__qualname__ for c in imagegates.__mro__]
