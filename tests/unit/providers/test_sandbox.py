"""The built-in sandbox: real, deterministic images shaped like the request, and its directives."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers import sandbox
from imagegate.providers.port import Finished, GenerationRequest, Pending, Submitted, TaskHandle
from imagegate.providers.sandbox import SandboxAdapter, output_size
from imagegate.testing.clock import FakeClock
from imagegate.types import Route


def request(
    prompt: str = "a red fox",
    params: dict[str, Any] | None = None,
    outputs: int = 1,
    model: str = "gpt-image-1.5",
    job_id: str = "job-1",
) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id,
        model=model,
        route=Route("sandbox", model),
        prompt=prompt,
        params=params or {},
        outputs=outputs,
    )


def opened(data: bytes | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(data))


async def finished(adapter: SandboxAdapter, req: GenerationRequest) -> Finished:
    result = await adapter.submit(req)
    assert isinstance(result, Finished)
    return result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def instant(clock: FakeClock) -> SandboxAdapter:
    return SandboxAdapter(clock, latency=0, max_side=256)


async def test_the_same_request_gives_the_same_bytes(instant: SandboxAdapter) -> None:
    first = await finished(instant, request(params={"seed": 7}))
    second = await finished(instant, request(params={"seed": 7}))
    other = await finished(instant, request(params={"seed": 8}))
    assert first.images[0].data == second.images[0].data
    assert first.images[0].data != other.images[0].data


@pytest.mark.parametrize(
    ("params", "prompt", "size"),
    [
        ({}, "x", (256, 256)),
        ({"aspect_ratio": "16:9"}, "x", (256, 144)),
        ({"aspect_ratio": "2:3"}, "x", (171, 256)),
        ({"width": 1440, "height": 720}, "x", (256, 128)),
        ({"size": "1536x1024"}, "x", (256, 171)),
        ({"image_size": "landscape_4_3"}, "x", (256, 192)),
        ({}, "a castle --ar 21:9", (256, 110)),
    ],
)
def test_size_follows_the_params(
    params: dict[str, Any], prompt: str, size: tuple[int, int]
) -> None:
    assert output_size(params, prompt, max_side=256) == size


@pytest.mark.parametrize(
    ("params", "fmt", "content_type"),
    [
        ({}, "PNG", "image/png"),
        ({"output_format": "jpeg"}, "JPEG", "image/jpeg"),
        ({"output_format": "jpg"}, "JPEG", "image/jpeg"),
        ({"output_format": "webp"}, "WEBP", "image/webp"),
        ({"output_format": "png"}, "PNG", "image/png"),
    ],
)
async def test_format_and_count_follow_the_request(
    instant: SandboxAdapter, params: dict[str, Any], fmt: str, content_type: str
) -> None:
    result = await finished(instant, request(params={**params, "aspect_ratio": "3:2"}, outputs=3))
    assert len(result.images) == 3
    for image in result.images:
        assert image.content_type == content_type
        picture = opened(image.data)
        assert picture.format == fmt
        assert picture.size == (256, 171)
    assert len({image.data for image in result.images}) == 3  # three different pictures
    assert result.grid is None


async def test_midjourney_gets_four_images_and_their_grid(instant: SandboxAdapter) -> None:
    result = await finished(instant, request(model="midjourney", outputs=4))
    assert len(result.images) == 4
    assert result.grid is not None
    assert opened(result.grid.data).size == (512, 512)


async def test_pictures_are_drawn_off_the_event_loop(
    instant: SandboxAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing and encoding a picture takes tens of milliseconds: a thread does it, so the loop
    (this test's thread) goes on serving requests meanwhile."""
    drawn_on: list[int] = []
    for name in ("render", "_grid"):
        original = getattr(sandbox, name)

        def spy(*args: Any, original: Any = original) -> bytes:
            drawn_on.append(threading.get_ident())
            data: bytes = original(*args)
            return data

        monkeypatch.setattr(sandbox, name, spy)
    await finished(instant, request(model="midjourney", outputs=4))
    assert len(drawn_on) == 5  # four pictures and their grid
    assert threading.get_ident() not in drawn_on


async def test_progress_in_steps_until_the_latency_has_passed(clock: FakeClock) -> None:
    adapter = SandboxAdapter(clock, latency=3, steps=3, max_side=64)
    req = request()
    submitted = await adapter.submit(req)
    assert isinstance(submitted, Submitted)
    assert submitted.poll_after == 1
    task = TaskHandle(submitted.task_id, submitted.state)
    seen = []
    for _ in range(3):
        polled = await adapter.poll(req, task)
        assert isinstance(polled, Pending)
        seen.append(polled.progress)
        clock.advance(1)
    assert seen == [0, 33, 67]
    assert isinstance(await adapter.poll(req, task), Finished)


async def test_a_restarted_worker_resumes_the_same_task(clock: FakeClock) -> None:
    """The task state travels in the job row: a new adapter instance finishes the same task."""
    req = request(params={"seed": 3})
    submitted = await SandboxAdapter(clock, latency=2, max_side=64).submit(req)
    assert isinstance(submitted, Submitted)
    clock.advance(2)
    later = await SandboxAdapter(clock, latency=2, max_side=64).poll(
        req, TaskHandle(submitted.task_id, submitted.state)
    )
    again = await finished(SandboxAdapter(clock, latency=0, max_side=64), req)
    assert isinstance(later, Finished)
    assert later.images[0].data == again.images[0].data


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ("moderated", UpstreamModerated),
        ("rejected", UpstreamRejected),
        ("retryable", UpstreamRetryable),
        ("misconfigured", UpstreamMisconfigured),
        ("lost", UpstreamTaskLost),
        ("submit-retryable", UpstreamRetryable),
    ],
)
async def test_failure_directives(
    instant: SandboxAdapter, directive: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await instant.submit(request(prompt=f"a fox [[fail:{directive}]]"))


async def test_retryable_once_fails_one_time_then_succeeds(instant: SandboxAdapter) -> None:
    req = request(prompt="a fox [[fail:retryable-once]]")
    with pytest.raises(UpstreamRetryable):
        await instant.submit(req)
    assert isinstance(await instant.submit(req), Finished)


async def test_latency_directive_and_submit_log(clock: FakeClock, tmp_path: Path) -> None:
    log = tmp_path / "submits.log"
    adapter = SandboxAdapter(clock, latency=0, submit_log=str(log), max_side=64)
    slow = await adapter.submit(request(prompt="a fox [[latency:5]]", job_id="job-a"))
    assert isinstance(slow, Submitted)
    assert slow.poll_after == pytest.approx(5 / 3)
    await adapter.submit(request(job_id="job-b"))
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [job for job, _task in lines] == ["job-a", "job-b"]
    assert lines[0][1] == slow.task_id
