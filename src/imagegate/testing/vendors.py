"""Every fake vendor behind one ``httpx2`` transport, dispatched by the request's host.

``build_runtime(settings, transport=...)`` hands one transport to every adapter and to the output
downloader, so a whole gateway can run against the fakes of ``imagegate.testing.fake_upstream``
with production settings shapes: each vendor keeps its real default base URL, and the URLs a fake
puts in its answers (BFL's ``polling_url``, fal's ``status_url``, Replicate's ``urls.get``, the
image URLs of Ideogram, Ark, DashScope …) are built from the host the request reached, so they
resolve through the same transport. A host no fake serves fails like an unreachable one.

``provider_settings()`` is the matching ``providers`` settings dict: the key each fake accepts for
every vendor (Kling's access and secret key pair), and the Midjourney relay's ``base_url``, which
has no default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2

from imagegate.testing.fake_upstream import create_app

__all__ = [
    "BFL_POLLING_BASE",
    "MIDJOURNEY_RELAY_URL",
    "VENDOR_HOSTS",
    "VendorTransport",
    "provider_settings",
]

MIDJOURNEY_RELAY_URL = "https://mj-relay.imagegate.test"
"""Where the fake midjourney-proxy relay answers (a relay has no public default)."""

BFL_POLLING_BASE = "https://api.us1.bfl.ai"
"""BFL answers submits with a ``polling_url`` on a regional host; the fake imitates that."""

VENDOR_HOSTS: Mapping[str, tuple[str, ...]] = {
    "ark": ("ark.ap-southeast.bytepluses.com", "ark.cn-beijing.volces.com"),
    "bfl": ("api.bfl.ai", "api.eu.bfl.ai", "api.us.bfl.ai", "api.us1.bfl.ai"),
    "dashscope": (
        "dashscope-intl.aliyuncs.com",
        "dashscope.aliyuncs.com",
        "dashscope-us.aliyuncs.com",
    ),
    "fal": ("queue.fal.run",),
    "gemini": ("generativelanguage.googleapis.com",),
    "ideogram": ("api.ideogram.ai",),
    "kling": ("api-singapore.klingai.com",),
    "midjourney": ("mj-relay.imagegate.test",),
    "openai": ("api.openai.com",),
    "replicate": ("api.replicate.com",),
    "reve": ("api.reve.com",),
    "xai": ("api.x.ai",),
}
"""Vendor → the hosts its adapter may call: default and regional base URLs, polling hosts."""

_APP_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "bfl": {"polling_base": BFL_POLLING_BASE},
    "openai": {"retired_models": ("dall-e-2", "dall-e-3")},
}
"""Fake options that make them behave like the vendors today (OpenAI shut DALL·E down)."""

_KEYS: Mapping[str, str] = {
    "ark": "test-ark-key",
    "bfl": "bfl_test_key",
    "dashscope": "sk-test",
    "fal": "fal_test_key",
    "gemini": "test-gemini-key",
    "ideogram": "test-ideogram-key",
    "kling": "ak-test:sk-test",
    "midjourney": "test-secret",
    "openai": "sk-fake-openai",
    "replicate": "r8_test_token",
    "reve": "papi.fake-reve",
    "xai": "xai-fake-key",
}
"""The credential each fake accepts by default (Kling's is ``access:secret``)."""


class VendorTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the fake app of the vendor that owns its host.

    A vendor's fake is built on its first request (building all twelve for every test would
    cost more than most tests); ``app(vendor)`` returns it, so a test can read what the vendor
    received (``transport.app("bfl").state.requests``).
    """

    def __init__(self) -> None:
        self._vendor_of = {host: vendor for vendor, hosts in VENDOR_HOSTS.items() for host in hosts}
        self._apps: dict[str, Any] = {}
        self._transports: dict[str, httpx2.ASGITransport] = {}

    def app(self, vendor: str) -> Any:
        """The fake ASGI app serving ``vendor``."""
        if vendor not in self._apps:
            self._apps[vendor] = create_app(vendor, **_APP_OPTIONS.get(vendor, {}))
            self._transports[vendor] = httpx2.ASGITransport(app=self._apps[vendor])
        return self._apps[vendor]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        vendor = self._vendor_of.get(request.url.host)
        if vendor is None:
            raise httpx2.ConnectError(f"no fake vendor serves {request.url.host}", request=request)
        self.app(vendor)
        return await self._transports[vendor].handle_async_request(request)


def provider_settings() -> dict[str, dict[str, Any]]:
    """The ``providers`` settings that point every adapter at its fake with a valid key."""
    providers: dict[str, dict[str, Any]] = {
        vendor: {"api_key": key} for vendor, key in _KEYS.items()
    }
    providers["midjourney"]["base_url"] = MIDJOURNEY_RELAY_URL
    return providers
