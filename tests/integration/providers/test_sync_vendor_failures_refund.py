"""The six synchronous vendors' failures through the whole gateway: job state, price, balance.

One gateway per case with live keys forced onto the vendor's route (no other route, no
substitute), every adapter talking to ``imagegate.testing.vendors``. A moderated answer — each in
its vendor's own form, steered by ``moderate-me`` in the prompt — ends the job FAILED, costing 0,
with the balance back where it was and the vendor asked exactly once. So do an answer that is not
JSON, empty or of the wrong shape, and a read timeout after the paid call was sent (there the
vendor's host answers through ``Broken``); a connection that never opened is retried instead,
until the job runs out of attempts and is refunded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from imagegate.testing.vendors import VENDOR_HOSTS, VendorTransport
from tests.integration.conftest import Gateway, on_fake_vendors, one_route

CREDITS = 1000

ROUTES = {
    "openai": ("gpt-image-1.5", "openai:gpt-image-1.5"),
    "xai": ("grok-imagine-image", "xai:grok-imagine-image"),
    "reve": ("reve-create", "reve:reve-create"),
    "gemini": ("nano-banana", "gemini:gemini-2.5-flash-image"),
    "ideogram": ("ideogram-v3-turbo", "ideogram:V_3_TURBO"),
    "ark": ("seedream-4", "ark:seedream-4-0-250828"),
}
"""Vendor → a catalog model and the route that sends it there."""

VENDORS = list(ROUTES)
MODERATED = "content policy violation"

Handler = Callable[[httpx2.Request], httpx2.Response]


class Broken(VendorTransport):
    """The fake vendors, except that one vendor's hosts answer with ``handler``."""

    def __init__(self, vendor: str, handler: Handler) -> None:
        super().__init__()
        self._hosts = frozenset(VENDOR_HOSTS[vendor])
        self._handler = handler
        self.calls = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host not in self._hosts:
            return await super().handle_async_request(request)
        self.calls += 1
        await request.aread()
        return self._handler(request)


def gateway_for(
    sqlite_url: str, data_dir: Path, vendor: str, vendors: VendorTransport
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """A gateway whose live keys send the vendor's model to it alone."""
    settings = one_route(*ROUTES[vendor])
    return on_fake_vendors(sqlite_url, data_dir, vendors, credits=CREDITS, **settings)


async def run(gateway: Gateway, vendor: str, prompt: str) -> dict[str, Any]:
    """Submit one job of the vendor's model, drain the queue, read the job back."""
    model, _ = ROUTES[vendor]
    before = await gateway.balance()
    accepted = await gateway.submit({"model": model, "prompt": prompt}, key=gateway.live_key)
    assert accepted.status_code == 202, accepted.text
    assert await gateway.balance() < before  # charged up front
    await gateway.drain()
    return await gateway.job(accepted.json()["jobId"], key=gateway.live_key)


async def assert_failed_and_refunded(gateway: Gateway, job: dict[str, Any], error: str) -> None:
    assert job["status"] == "FAILED", job
    assert error in job["error"], job["error"]
    assert job["creditCost"] == 0
    assert job["result"] is None or not job["result"].get("images"), job
    assert await gateway.balance() == CREDITS


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_moderated_answer_fails_the_job_and_refunds_it(
    sqlite_url: str, tmp_path: Path, vendor: str
) -> None:
    vendors = VendorTransport()
    async with gateway_for(sqlite_url, tmp_path / "data", vendor, vendors) as gateway:
        job = await run(gateway, vendor, "moderate-me: a lighthouse at dawn")

        await assert_failed_and_refunded(gateway, job, MODERATED)
    assert len(vendors.app(vendor).state.requests) == 1  # moderation is never retried


BROKEN_ANSWERS: dict[str, tuple[Handler, str]] = {
    "not-json": (lambda r: httpx2.Response(200, text="<html>proxy error</html>"), "not JSON"),
    "empty-body": (lambda r: httpx2.Response(200, content=b""), "empty body"),
    "wrong-shape": (lambda r: httpx2.Response(200, json=["surprise"]), "instead of an object"),
}
"""Prompt word → what the vendor's host answers, and what the job's error must say."""


def _break_by_prompt(request: httpx2.Request) -> httpx2.Response:
    """Answer as the prompt word in the body (JSON or multipart) says; ``hang-me`` times out."""
    for word, (handler, _) in BROKEN_ANSWERS.items():
        if word.encode() in request.content:
            return handler(request)
    raise httpx2.ReadTimeout("no answer", request=request)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_paid_call_without_a_usable_answer_fails_once_and_refunds(
    sqlite_url: str, tmp_path: Path, vendor: str
) -> None:
    expected = {word: error for word, (_, error) in BROKEN_ANSWERS.items()}
    expected["hang-me"] = "may already have charged"
    vendors = Broken(vendor, _break_by_prompt)
    async with gateway_for(sqlite_url, tmp_path / "data", vendor, vendors) as gateway:
        for word, error in expected.items():
            job = await run(gateway, vendor, f"{word}: a lighthouse at dawn")

            await assert_failed_and_refunded(gateway, job, error)
    assert vendors.calls == len(expected)  # each sent once: the vendor may have billed it


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_connection_that_never_opened_is_retried_then_refunded(
    sqlite_url: str, tmp_path: Path, vendor: str
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    vendors = Broken(vendor, refuse)
    async with gateway_for(sqlite_url, tmp_path / "data", vendor, vendors) as gateway:
        job = await run(gateway, vendor, "a lighthouse at dawn")

        await assert_failed_and_refunded(gateway, job, "unreachable")
        attempts = gateway.runtime.settings.max_attempts
    assert vendors.calls == attempts  # retried until the job ran out of attempts
