"""The blocking ``Client`` against a live gateway: every resource, and every error class
provoked for real."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import imagegate.client
from imagegate.client import (
    APIConnectionError,
    ApiError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    ImagegateError,
    InsufficientCreditsError,
    Job,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
)
from tests.images import image_bytes

from .conftest import Gateway

pytestmark = pytest.mark.slow

PUBLIC_SURFACE = {
    "TERMINAL",
    "APIConnectionError",
    "APIStatusError",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Download",
    "ImagegateError",
    "InsufficientCreditsError",
    "Job",
    "JobPage",
    "JobTimeoutError",
    "Me",
    "Model",
    "NotFoundError",
    "Output",
    "RateLimitError",
    "ServiceUnavailableError",
    "Upload",
    "WebhookVerificationError",
    "verify_apiframe_signature",
    "verify_standard_webhook",
    "verify_webhook",
}


def test_the_public_surface_is_exactly_this() -> None:
    assert set(imagegate.client.__all__) == PUBLIC_SURFACE
    assert all(hasattr(imagegate.client, name) for name in PUBLIC_SURFACE)


def test_every_api_error_is_an_api_error_under_the_old_name_too() -> None:
    assert ApiError is APIStatusError
    for name in PUBLIC_SURFACE:
        kind = getattr(imagegate.client, name)
        if isinstance(kind, type) and kind.__name__.endswith("Error"):
            assert issubclass(kind, ImagegateError) or name == "WebhookVerificationError"


def test_generate_waits_with_progress_and_downloads_typed_results(gateway: Gateway) -> None:
    seen: list[tuple[str, int]] = []
    with Client(gateway.base_url, gateway.test_key) as client:
        job = client.images.generate(
            model="gpt-image-1.5",
            prompt="a red kite",
            params={"number_of_images": 2, "output_format": "jpeg"},
            wait=30,
            on_progress=lambda j: seen.append((j.status, j.progress)),
        )
        assert isinstance(job, Job)
        assert job.status == "COMPLETED" and job.done and job.model == "gpt-image-1.5"
        assert len(job.images) == 2 and [o.content_type for o in job.outputs] == ["image/jpeg"] * 2
        assert job.raw["result"]["images"] == job.images
        assert seen[-1] == ("COMPLETED", 100)
        assert len(seen) == len(set(seen))  # only changes are reported
        download = client.images.download(job.images[0])
        assert download.extension == ".jpg"
        assert Image.open(io.BytesIO(download.content)).format == "JPEG"


def test_generate_without_wait_returns_the_queued_job(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client:
        job = client.images.generate(model="flux-2-pro", prompt="a lighthouse")
        assert job.status == "QUEUED" and job.model == "flux-2-pro" and not job.done
        finished = client.jobs.wait(job.id, timeout=30)
        assert finished.status == "COMPLETED" and finished.id == job.id


def test_midjourney_action_upsamples_a_finished_grid(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client:
        grid = client.images.generate(model="midjourney", prompt="a castle", wait=30)
        assert len(grid.images) == 4 and grid.grid_url
        upscale = client.images.midjourney_action("upsample", grid.id, fields={"index": 2}, wait=30)
        assert upscale.status == "COMPLETED" and len(upscale.images) == 1


def test_iterate_walks_every_page_newest_first(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client:
        made = [client.images.generate(model="flux-2-pro", prompt=f"p{i}").id for i in range(3)]
        walked = [job.id for job in client.jobs.iterate(model="flux-2-pro", page_size=1)]
        assert walked[:3] == made[::-1]
        first = client.jobs.list(model="flux-2-pro", limit=1)
        assert first.has_more and first.next_cursor and first.jobs[0].id == made[-1]
        second = client.jobs.list(model="flux-2-pro", limit=1, cursor=first.next_cursor)
        assert second.jobs[0].id == made[-2]


def test_uploads_from_a_path_or_bytes(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    path.write_bytes(image_bytes((64, 48), "navy"))
    with Client(gateway.base_url, gateway.test_key) as client:
        from_path = client.uploads.create(path)
        from_bytes = client.uploads.create(image_bytes((32, 32), "red", "JPEG"))
    assert from_path.content_type == "image/png" and from_path.url.startswith(gateway.base_url)
    assert from_bytes.content_type == "image/jpeg" and from_bytes.id != from_path.id


def test_models_me_and_webhook_log(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client:
        models = client.models.list()
        assert {"midjourney", "flux-2-pro"} <= {m.id for m in models}
        flux = client.models.get("flux-2-pro")
        assert flux.params_key == "fluxParams" and flux.params_schema is not None
        me = client.me()
        assert me.credits == 500 and me.api_key.kind == "test"
        job = client.images.generate(model="flux-2-pro", prompt="x", wait=30)
        assert client.webhooks.deliveries(job.id)["deliveries"] == []


def test_a_bad_request_names_each_field(gateway: Gateway) -> None:
    with (
        Client(gateway.base_url, gateway.test_key) as client,
        pytest.raises(BadRequestError) as raised,
    ):
        client.images.generate(model="gpt-image-1.5", prompt="x", params={"number_of_images": 99})
    assert raised.value.status == 400 and raised.value.code == "validation_failed"
    assert list(raised.value.details) == ["gptImageParams.number_of_images"]
    assert "gptImageParams.number_of_images" in str(raised.value)


def test_a_wrong_key_is_an_authentication_error(gateway: Gateway) -> None:
    with (
        Client(gateway.base_url, "ig_test_nope") as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.me()
    assert raised.value.status == 401 and raised.value.code == "api_key_invalid"


def test_a_live_key_without_credits_gets_the_numbers(gateway: Gateway, broke_key: str) -> None:
    with (
        Client(gateway.base_url, broke_key) as client,
        pytest.raises(InsufficientCreditsError) as raised,
    ):
        client.images.generate(model="gpt-image-1.5", prompt="x")
    assert raised.value.status == 402
    assert raised.value.credits_available == 0
    assert raised.value.credits_required is not None and raised.value.credits_required > 0


def test_an_unknown_job_is_not_found(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client, pytest.raises(NotFoundError):
        client.jobs.get("01900000-0000-7000-8000-000000000000")


def test_a_reused_idempotency_key_with_another_body_conflicts(gateway: Gateway) -> None:
    with Client(gateway.base_url, gateway.test_key) as client:
        first = client.images.generate(model="flux-2-pro", prompt="a", idempotency_key="same-1")
        again = client.images.generate(model="flux-2-pro", prompt="a", idempotency_key="same-1")
        assert again.id == first.id
        with pytest.raises(ConflictError) as raised:
            client.images.generate(model="flux-2-pro", prompt="b", idempotency_key="same-1")
    assert raised.value.status == 409


def test_the_queued_jobs_cap_is_a_rate_limit_with_retry_after(stalled: Gateway) -> None:
    with Client(stalled.base_url, stalled.test_key, max_retries=0) as client:
        queued = client.images.generate(model="flux-2-pro", prompt="first")
        try:
            with pytest.raises(RateLimitError) as raised:
                client.images.generate(model="flux-2-pro", prompt="second")
            assert raised.value.status == 429 and raised.value.retry_after == 5
            with pytest.raises(JobTimeoutError) as timed_out:
                client.jobs.wait(queued.id, timeout=0.3)
            assert timed_out.value.job.status == "QUEUED"
            assert isinstance(timed_out.value, TimeoutError)
        finally:
            cancelled = client.jobs.cancel(queued.id)
        assert cancelled.status == "CANCELLED"
        with pytest.raises(ConflictError):
            client.jobs.cancel(queued.id)


def test_an_unreachable_gateway_is_a_connection_error(refused_url: str) -> None:
    with (
        Client(refused_url, "ig_test_x", max_retries=1) as client,
        pytest.raises(APIConnectionError) as raised,
    ):
        client.jobs.get("anything")
    assert refused_url in str(raised.value)
