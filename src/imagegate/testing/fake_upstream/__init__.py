"""Fake upstream vendor servers, one module per vendor, each speaking that vendor's exact protocol.

Each module ``imagegate.testing.fake_upstream.<vendor>`` exposes ``create_app(**options)`` returning
an ASGI app. Tests reach it in-process through ``httpx2.ASGITransport``, or serve it on 127.0.0.1:

    python -m imagegate.testing.fake_upstream --vendor openai --port 9101

A module holds only its vendor's protocol: paths, auth header, status words, error bodies. What
they share (the prompt switches such as ``rate-limit-me``, request recording, the task book,
image serving, key checks) is ``kit``, whose docstring lists every switch and what it does.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app"]


def create_app(vendor: str, **options: Any) -> Any:
    """The fake server app for ``vendor`` (module name, e.g. ``openai`` or ``bfl``)."""
    module = importlib.import_module(f"{__name__}.{vendor.replace('-', '_')}")
    return module.create_app(**options)
