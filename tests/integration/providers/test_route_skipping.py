"""The router passes over a route that cannot send a job's params, and never picks a dead one.

The gates' state is real Redis; the pool is configured for every provider the routes name.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagegate.catalog import build_catalog
from imagegate.errors import UpstreamMisconfigured
from imagegate.providers.pool import ProviderPool
from imagegate.providers.port import ProviderContext
from imagegate.queue.gates import ProviderGates
from imagegate.queue.gates_redis import RedisGateState
from imagegate.queue.router import Router
from imagegate.settings import Settings
from imagegate.store.jobs import JobRow
from imagegate.testing.clock import FakeClock
from imagegate.types import FetchedInput

PROVIDERS = ("bfl", "replicate", "fal", "dashscope", "ideogram", "gemini")


async def _no_inputs(url: str) -> FetchedInput:
    raise AssertionError(f"the router fetched {url}")


@pytest.fixture
async def router(redis_url: str) -> AsyncIterator[Router]:
    settings = Settings(providers={name: {"api_key": "k"} for name in PROVIDERS})
    clock = FakeClock()
    pool = ProviderPool(settings, ProviderContext(fetch_input=_no_inputs, clock=clock))
    state = RedisGateState(redis_url, prefix=f"t{uuid.uuid4().hex}")
    yield Router(build_catalog(), pool, ProviderGates(state, clock, settings))
    await state.aclose()
    await pool.aclose()


def _job(model: str, params: dict[str, Any], outputs: int = 1) -> JobRow:
    values: dict[str, Any] = {field.name: None for field in dataclasses.fields(JobRow)}
    values.update(
        id="job-1",
        account_id="acc",
        model=model,
        status="QUEUED",
        step="submit",
        progress=0,
        prompt="a fox",
        input={},
        params=params,
        outputs_expected=outputs,
        sandbox=False,
        credit_cost=1,
        route_index=0,
        run_at=0,
        attempts=0,
        deadline_at=0,
        created_at=0,
        updated_at=0,
    )
    return JobRow(**values)


async def test_a_ratio_only_bfl_takes_goes_to_bfl_and_has_nowhere_to_fail_over(
    router: Router,
) -> None:
    job = _job("flux-1.1-pro-ultra", {"aspect_ratio": "7:5"})
    choice = await router.choose(job)
    assert str(choice.route) == "bfl:flux-pro-1.1-ultra"
    assert await router.next_index(job, choice.index) is None


async def test_several_qwen_images_skip_the_one_image_replicate_route(router: Router) -> None:
    job = _job("qwen-image", {"num_images": 3}, outputs=3)
    first = await router.choose(job)
    assert first.route.provider == "dashscope"
    after = await router.next_index(job, first.index)
    assert after is not None
    later = await router.choose(dataclasses.replace(job, route_index=after))
    assert later.route.provider == "fal"


async def test_one_qwen_image_may_still_fail_over_to_replicate(router: Router) -> None:
    job = _job("qwen-image", {"num_images": 1})
    first = await router.choose(job)
    after = await router.next_index(job, first.index)
    assert after is not None
    assert (await router.choose(dataclasses.replace(job, route_index=after))).route.provider == (
        "replicate"
    )


async def test_legacy_ideogram_inpainting_on_v2a_skips_ideograms_edit(router: Router) -> None:
    params = {"image": "https://img.example/a.png", "mask": "https://img.example/m.png"}
    choice = await router.choose(_job("ideogram-v2a", params))
    assert str(choice.route) == "replicate:ideogram-ai/ideogram-v2a"


async def test_imagen_is_served_by_its_substitute_first(router: Router) -> None:
    choice = await router.choose(_job("imagen-4", {"aspect_ratio": "16:9"}))
    assert str(choice.route) == "gemini:gemini-2.5-flash-image"


async def test_a_job_no_configured_route_can_take_is_a_misconfiguration(router: Router) -> None:
    with pytest.raises(UpstreamMisconfigured, match="can take this job's params"):
        await router.choose(_job("flux-1.1-pro-ultra", {"aspect_ratio": "32:9"}))


async def test_a_ratio_only_replicate_lists_for_nano_banana_skips_gemini(router: Router) -> None:
    job = _job("nano-banana", {"aspect_ratio": "9:21"})
    choice = await router.choose(job)
    assert str(choice.route) == "replicate:google/nano-banana"
    assert await router.next_index(job, choice.index) is None  # fal takes Google's list only


async def test_an_ideogram_4_resolution_goes_to_replicate_past_ideograms_4_0_endpoint(
    router: Router,
) -> None:
    plain = await router.choose(_job("ideogram-v4-balanced", {}))
    assert str(plain.route) == "ideogram:V_4"
    sized = await router.choose(_job("ideogram-v4-balanced", {"resolution": "2048x2048"}))
    assert str(sized.route) == "replicate:ideogram-ai/ideogram-v4-balanced"
    shaped = await router.choose(_job("ideogram-v4-balanced", {"aspect_ratio": "16:9"}))
    assert str(shaped.route) == "replicate:ideogram-ai/ideogram-v4-balanced"
    seeded = await router.choose(_job("ideogram-v4-balanced", {"seed": 7}))
    assert str(seeded.route) == "ideogram:V_4"


async def test_an_ideogram_3_resolution_never_fails_over_to_fal_which_drops_it(
    router: Router,
) -> None:
    job = _job("ideogram-v3-turbo", {"resolution": "1024x1024"})
    first = await router.choose(job)
    assert first.route.provider == "ideogram"
    after = await router.next_index(job, first.index)
    assert after is not None
    later = await router.choose(dataclasses.replace(job, route_index=after))
    assert later.route.provider == "replicate"
    assert await router.next_index(job, later.index) is None
