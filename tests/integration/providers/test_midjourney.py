"""The Midjourney relay adapter against the fake midjourney-proxy, in-process."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import AsyncIterator, Mapping
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
from imagegate.providers import midjourney
from imagegate.providers.midjourney import MidjourneyAdapter, build_prompt, create_adapter
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    Submitted,
    TaskHandle,
)
from imagegate.testing.fake_upstream.midjourney import QUADRANT_COLOURS, create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import (
    adapter_on,
    generation_request,
    input_fetcher,
    run_to_finish,
)

SECRET = "test-secret"
BASE = "http://relay.test"


fetch_input = input_fetcher(image_bytes((8, 8), (1, 2, 3)))


def _adapter(app: Any, key: str = SECRET, **options: Any) -> MidjourneyAdapter:
    return adapter_on(
        create_adapter, app, api_key=key, base_url=BASE, options=options, fetch_input=fetch_input
    )


def _request(
    prompt: str = "a red fox", params: Mapping[str, Any] | None = None, **action: Any
) -> GenerationRequest:
    return generation_request(
        "midjourney",
        Route("midjourney", "midjourney"),
        prompt,
        params if params is not None else {"aspect_ratio": "16:9"},
        outputs=1 if action.get("type") == "upsample" else 4,
        action=action,
    )


@pytest.fixture
def app() -> Any:
    return create_app(api_secret=SECRET)


@pytest.fixture
async def adapter(app: Any) -> AsyncIterator[MidjourneyAdapter]:
    adapter = _adapter(app)
    yield adapter
    await adapter.aclose()


def _colour(data: bytes | None) -> tuple[int, ...]:
    assert data is not None
    with Image.open(io.BytesIO(data)) as image:
        pixel = image.convert("RGB").getpixel((image.width - 2, image.height - 2))
    assert isinstance(pixel, tuple)
    return pixel


def test_params_become_flags_and_flags_in_the_prompt_win() -> None:
    params = {"aspect_ratio": "16:9", "stylize": 250, "chaos": 10, "tile": True}
    assert build_prompt("a fox", params, "relax") == (
        "a fox --ar 16:9 --stylize 250 --chaos 10 --tile --relax"
    )
    assert (
        build_prompt("a fox --ar 2:3 --s 50", params) == "a fox --ar 2:3 --s 50 --chaos 10 --tile"
    )


async def test_imagine_sends_flags_with_the_secret_and_splits_the_grid(
    app: Any, adapter: MidjourneyAdapter
) -> None:
    result = await run_to_finish(adapter, _request())

    imagine = next(r for r in app.state.requests if r["path"] == "/mj/submit/imagine")
    assert imagine["method"] == "POST"
    assert imagine["headers"]["mj-api-secret"] == SECRET
    assert imagine["json"] == {"prompt": "a red fox --ar 16:9"}
    assert len(result.images) == 4
    assert [_colour(image.data) for image in result.images] == list(QUADRANT_COLOURS)
    for image in result.images:
        assert image.data is not None
        with Image.open(io.BytesIO(image.data)) as tile:
            assert tile.size == (128, 72)  # 16:9 honoured through --ar
    assert result.grid is not None and result.grid.content_type == "image/png"
    assert result.grid.data is not None
    with Image.open(io.BytesIO(result.grid.data)) as grid:
        assert grid.size == (256, 144)
    assert result.served_model == "midjourney"


async def test_the_grid_is_split_off_the_event_loop(
    adapter: MidjourneyAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding a 2048-pixel grid and encoding its four tiles takes 0.1-0.6 s of CPU: a thread
    does it, so the loop (this test's thread) goes on serving meanwhile."""
    split_on: list[int] = []
    original = midjourney.split_grid

    def spy(grid: bytes) -> list[bytes]:
        split_on.append(threading.get_ident())
        return original(grid)

    monkeypatch.setattr(midjourney, "split_grid", spy)
    result = await run_to_finish(adapter, _request())
    assert len(result.images) == 4
    assert len(split_on) == 1 and split_on[0] != threading.get_ident()


async def test_relay_split_urls_are_used_when_present() -> None:
    adapter = _adapter(create_app(api_secret=SECRET, split_urls=True))
    try:
        result = await run_to_finish(adapter, _request())
    finally:
        await adapter.aclose()
    urls = [image.url or "" for image in result.images]
    assert all(url.startswith(f"{BASE}/mj/image/") for url in urls)
    assert [url.rsplit("_", 1)[-1] for url in urls] == ["0.png", "1.png", "2.png", "3.png"]
    assert result.grid is not None and result.grid.data is not None


async def test_slow_task_reports_progress_before_finishing(adapter: MidjourneyAdapter) -> None:
    request = _request("slow fox")
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    progress = []
    answer = await adapter.poll(request, handle)
    while isinstance(answer, Pending):
        progress.append(answer.progress)
        answer = await adapter.poll(request, handle)
    assert progress == [25, 50, 75]
    assert isinstance(answer, Finished) and len(answer.images) == 4


async def test_banned_prompt_is_moderated(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="moderate-me"):
        await adapter.submit(_request("moderate-me please"))


async def test_image_filter_failure_is_moderated(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="image filters"):
        await run_to_finish(adapter, _request("filter-me"))


async def test_plain_failure_is_rejected_with_the_reason(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamRejected, match=r"\[Invalid parameter\] Invalid value"):
        await run_to_finish(adapter, _request("fail-me"))


async def test_validation_code_is_rejected_with_the_relay_message(
    adapter: MidjourneyAdapter,
) -> None:
    with pytest.raises(UpstreamRejected, match="prompt不能为空"):
        await adapter.submit(_request("  ", {}))


async def test_rate_limit_is_retryable_with_retry_after(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await adapter.submit(_request("rate-limit-me"))
    assert caught.value.retry_after == 7


async def test_queue_full_and_server_error_are_retryable(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamRetryable, match="队列已满"):
        await adapter.submit(_request("queue-full"))
    with pytest.raises(UpstreamRetryable, match="500"):
        await adapter.submit(_request("server-error"))


async def test_wrong_secret_is_misconfigured(app: Any) -> None:
    adapter = _adapter(app, key="wrong")
    try:
        with pytest.raises(UpstreamMisconfigured):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


async def test_unknown_task_is_lost(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamTaskLost):
        await adapter.poll(_request(), TaskHandle("999", {}))


async def test_upsample_and_variation_use_change_on_the_open_source_relay(
    app: Any, adapter: MidjourneyAdapter
) -> None:
    parent = await adapter.submit(_request())
    assert isinstance(parent, Submitted)
    await adapter.poll(_request(), TaskHandle(parent.task_id))

    upsample = await run_to_finish(
        adapter, _request(type="upsample", index=3, parent_task_id=parent.task_id)
    )
    variation = await run_to_finish(
        adapter, _request(type="variation", index=2, parent_task_id=parent.task_id)
    )

    changes = [r["json"] for r in app.state.requests if r["path"] == "/mj/submit/change"]
    assert changes == [
        {"taskId": parent.task_id, "action": "UPSCALE", "index": 3},
        {"taskId": parent.task_id, "action": "VARIATION", "index": 2},
    ]
    assert len(upsample.images) == 1 and upsample.grid is None
    assert upsample.images[0].url is not None and upsample.images[0].url.startswith(BASE)
    assert len(variation.images) == 4 and variation.grid is not None


async def test_inpaint_is_refused_by_a_relay_without_buttons(adapter: MidjourneyAdapter) -> None:
    parent = await _run_id(adapter, _request())
    with pytest.raises(UpstreamRejected, match="no inpaint action"):
        await adapter.submit(_request(type="inpaint", parent_task_id=parent, mask="AAAA"))


async def test_action_on_a_forgotten_parent_is_lost(adapter: MidjourneyAdapter) -> None:
    with pytest.raises(UpstreamTaskLost):
        await adapter.submit(_request(type="upsample", index=1, parent_task_id="404"))


async def _run_id(adapter: MidjourneyAdapter, request: GenerationRequest) -> str:
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    assert isinstance(await adapter.poll(request, TaskHandle(submitted.task_id)), Finished)
    return submitted.task_id


async def test_plus_relay_actions_use_button_custom_ids_and_the_modal() -> None:
    app = create_app(api_secret=SECRET, buttons=True)
    adapter = _adapter(app)
    try:
        grid = await _run_id(adapter, _request())
        upsample_id = await _run_id(
            adapter, _request(type="upsample", index=2, parent_task_id=grid)
        )
        mask = "data:image/png;base64," + base64.b64encode(image_bytes((8, 8), (1, 2, 3))).decode()
        inpaint = await run_to_finish(
            adapter,
            _request("a blue fox", type="inpaint", parent_task_id=upsample_id, mask=mask),
        )
        zoom = await run_to_finish(
            adapter, _request(type="outpaint", parent_task_id=upsample_id, zoom_ratio=1.5)
        )
        pan = await run_to_finish(
            adapter, _request(type="pan", parent_task_id=upsample_id, direction="up")
        )
    finally:
        await adapter.aclose()

    actions = [
        r["json"]["customId"] for r in app.state.requests if r["path"] == "/mj/submit/action"
    ]
    assert [a.split("::")[:4] for a in actions] == [
        ["MJ", "JOB", "upsample", "2"],
        ["MJ", "Inpaint", "1", actions[1].split("::")[3]],
        ["MJ", "Outpaint", "75", "1"],
        ["MJ", "JOB", "pan_up", "1"],
    ]
    modal = next(r["json"] for r in app.state.requests if r["path"] == "/mj/submit/modal")
    assert modal["maskBase64"] == base64.b64encode(image_bytes((8, 8), (1, 2, 3))).decode()
    assert modal["prompt"] == "a blue fox --ar 16:9"
    for result in (inpaint, zoom, pan):
        assert len(result.images) == 4 and result.grid is not None


async def test_upsample_of_an_upsample_is_refused_by_the_plus_relay() -> None:
    adapter = _adapter(create_app(api_secret=SECRET, buttons=True))
    try:
        grid = await _run_id(adapter, _request())
        upsample_id = await _run_id(
            adapter, _request(type="upsample", index=1, parent_task_id=grid)
        )
        with pytest.raises(UpstreamRejected, match="no upsample action"):
            await adapter.submit(_request(type="upsample", index=1, parent_task_id=upsample_id))
    finally:
        await adapter.aclose()
