"""Each fake answers each prompt switch it honours the way its vendor does, and a plain prompt
succeeds, so the switch table of ``kit`` stays true for every vendor."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from imagegate.testing.fake_upstream import create_app


@dataclass
class Outcome:
    """What a client saw: the submit answer, and for a task, its last poll and the poll count."""

    http: httpx2.AsyncClient
    submit: httpx2.Response
    final: Any = None
    polls: int = 0


def _kling_token() -> str:
    def segment(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    head = segment({"alg": "HS256", "typ": "JWT"})
    body = segment({"iss": "ak-test", "exp": now + 1800, "nbf": now - 5})
    signature = hmac.new(b"sk-test", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@dataclass
class Vendor:
    """How to submit a prompt to one fake, and for an asynchronous vendor how to follow it."""

    path: str
    body: Callable[[str], dict[str, Any]]
    headers: Callable[[], dict[str, str]]
    multipart: bool = False
    task_url: Callable[[dict[str, Any]], str] | None = None
    finished: Callable[[dict[str, Any]], bool] = lambda answer: True
    result_url: Callable[[dict[str, Any]], str] | None = None
    accepted: Callable[[httpx2.Response], bool] = lambda submit: submit.status_code < 300


VENDORS: dict[str, Vendor] = {
    "openai": Vendor(
        "/v1/images/generations",
        lambda p: {"model": "gpt-image-1", "prompt": p},
        lambda: {"authorization": "Bearer sk-fake-openai"},
    ),
    "xai": Vendor(
        "/v1/images/generations",
        lambda p: {"model": "grok-imagine-image", "prompt": p},
        lambda: {"authorization": "Bearer xai-fake-key"},
    ),
    "reve": Vendor(
        "/v1/image/create",
        lambda p: {"prompt": p},
        lambda: {"authorization": "Bearer papi.fake-reve"},
    ),
    "gemini": Vendor(
        "/v1beta/models/gemini-2.5-flash-image:generateContent",
        lambda p: {"contents": [{"parts": [{"text": p}]}]},
        lambda: {"x-goog-api-key": "test-gemini-key"},
    ),
    "ark": Vendor(
        "/api/v3/images/generations",
        lambda p: {
            "model": "seedream-4-0-250828",
            "prompt": p,
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 3},
        },
        lambda: {"authorization": "Bearer test-ark-key"},
    ),
    "ideogram": Vendor(
        "/v1/ideogram-v3/generate",
        lambda p: {"prompt": p},
        lambda: {"api-key": "test-ideogram-key"},
        multipart=True,
    ),
    "bfl": Vendor(
        "/v1/flux-2-pro",
        lambda p: {"prompt": p},
        lambda: {"x-key": "bfl_test_key"},
        task_url=lambda submitted: str(submitted["polling_url"]),
        finished=lambda answer: answer["status"] != "Pending",
        result_url=lambda answer: str(answer["result"]["sample"]),
    ),
    "fal": Vendor(
        "/fal-ai/flux-pro",
        lambda p: {"prompt": p},
        lambda: {"authorization": "Key fal_test_key"},
        task_url=lambda submitted: str(submitted["status_url"]),
        finished=lambda answer: answer["status"] == "COMPLETED",
    ),
    "replicate": Vendor(
        "/v1/models/black-forest-labs/flux-2-pro/predictions",
        lambda p: {"input": {"prompt": p}},
        lambda: {"authorization": "Bearer r8_test_token"},
        task_url=lambda submitted: str(submitted["urls"]["get"]),
        finished=lambda answer: answer["status"] in ("succeeded", "failed", "canceled"),
        result_url=lambda answer: str(answer["output"]),
    ),
    "dashscope": Vendor(
        "/api/v1/services/aigc/text2image/image-synthesis",
        lambda p: {"model": "qwen-image", "input": {"prompt": p}},
        lambda: {"authorization": "Bearer sk-test", "x-dashscope-async": "enable"},
        task_url=lambda submitted: f"/api/v1/tasks/{submitted['output']['task_id']}",
        finished=lambda answer: answer["output"]["task_status"] in ("SUCCEEDED", "FAILED"),
    ),
    "kling": Vendor(
        "/v1/images/generations",
        lambda p: {"model_name": "kling-v1", "prompt": p},
        lambda: {"authorization": f"Bearer {_kling_token()}"},
        task_url=lambda submitted: f"/v1/images/generations/{submitted['data']['task_id']}",
        finished=lambda answer: answer["data"]["task_status"] in ("succeed", "failed"),
    ),
    "midjourney": Vendor(
        "/mj/submit/imagine",
        lambda p: {"prompt": p},
        lambda: {"mj-api-secret": "test-secret"},
        task_url=lambda submitted: f"/mj/task/{submitted['result']}/fetch",
        finished=lambda answer: answer["status"] in ("SUCCESS", "FAILURE"),
        accepted=lambda submit: submit.status_code == 200 and submit.json()["code"] == 1,
    ),
}


async def _run(vendor: str, prompt: str) -> Outcome:
    spec = VENDORS[vendor]
    transport = httpx2.ASGITransport(app=create_app(vendor))
    http = httpx2.AsyncClient(transport=transport, base_url="https://vendor.test")
    body = spec.body(prompt)
    if spec.multipart:
        submit = await http.post(
            spec.path, headers=spec.headers(), files={"prompt": (None, prompt)}
        )
    else:
        submit = await http.post(spec.path, headers=spec.headers(), json=body)
    outcome = Outcome(http, submit)
    if spec.task_url is None or not spec.accepted(submit):
        outcome.final = submit.json()
        return outcome
    url = spec.task_url(submit.json())
    while outcome.polls < 10:
        outcome.polls += 1
        answer = (await http.get(url, headers=spec.headers())).json()
        if spec.finished(answer):
            outcome.final = answer
            break
    if vendor == "fal":  # the result lives at response_url once the status says COMPLETED
        result = await http.get(str(outcome.final["response_url"]), headers=spec.headers())
        outcome.final = {"status_code": result.status_code, **result.json()}
    return outcome


Check = Callable[[Outcome], bool]

CASES: list[tuple[str, str, Check]] = [
    ("openai", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "7"),
    ("openai", "quota-me", lambda o: o.final["error"]["code"] == "insufficient_quota"),
    ("openai", "server-error", lambda o: o.submit.status_code == 500),
    ("openai", "moderate-me", lambda o: o.final["error"]["code"] == "moderation_blocked"),
    ("xai", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "5"),
    ("xai", "server-error", lambda o: o.submit.status_code == 500),
    ("xai", "moderate-me", lambda o: o.final["data"][0]["respect_moderation"] is False),
    ("xai", "block-me", lambda o: o.final == {"data": []}),
    ("reve", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "30"),
    ("reve", "broke-me", lambda o: o.final["error_code"] == "INSUFFICIENT_CREDITS"),
    ("reve", "server-error", lambda o: o.submit.status_code == 500),
    ("reve", "moderate-me", lambda o: o.final["content_violation"] is True
     and o.final["image"] == ""),
    ("gemini", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.final["error"]["details"][0]["retryDelay"] == "7s"),
    ("gemini", "retry-after-me", lambda o: o.submit.headers["retry-after"] == "11"),
    ("gemini", "server-error", lambda o: o.final["error"]["status"] == "INTERNAL"),
    ("gemini", "overloaded", lambda o: o.final["error"]["status"] == "UNAVAILABLE"),
    ("gemini", "moderate-me", lambda o: o.final["promptFeedback"]["blockReason"]
     == "PROHIBITED_CONTENT"),
    ("gemini", "unsafe-image", lambda o: o.final["candidates"][0]["finishReason"]
     == "IMAGE_SAFETY"),
    ("gemini", "no-image", lambda o: o.final["candidates"][0]["finishReason"] == "NO_IMAGE"),
    ("gemini", "thinking", lambda o: o.final["candidates"][0]["content"]["parts"][0]["thought"]),
    ("ark", "moderate-me", lambda o: o.final["error"]["code"]
     == "InputTextSensitiveContentDetected"),
    ("ark", "unsafe-output", lambda o: o.final["error"]["code"]
     == "OutputImageSensitiveContentDetected"),
    ("ark", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "3"),
    ("ark", "server-error", lambda o: o.submit.status_code == 500),
    ("ark", "unsafe-second", lambda o: "error" in o.final["data"][1]),
    ("ark", "fewer-images", lambda o: len(o.final["data"]) == 1),
    ("ideogram", "moderate-me", lambda o: o.submit.status_code == 422),
    ("ideogram", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "5"),
    ("ideogram", "no-funds", lambda o: o.final["reject_reason"] == "insufficient_funds"),
    ("ideogram", "server-error", lambda o: o.submit.status_code == 500),
    ("ideogram", "unavailable", lambda o: o.submit.status_code == 503),
    ("ideogram", "unsafe-output", lambda o: o.final["data"][0]["url"] is None),
    ("bfl", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "7"),
    ("bfl", "server-error", lambda o: o.submit.status_code == 500),
    ("bfl", "no-credits", lambda o: o.submit.status_code == 402),
    ("bfl", "moderate-me", lambda o: o.final["status"] == "Request Moderated"),
    ("bfl", "moderate-output", lambda o: o.final["status"] == "Content Moderated"),
    ("bfl", "fail-me", lambda o: o.final["status"] == "Error"),
    ("bfl", "slow", lambda o: o.polls == 4 and o.final["status"] == "Ready"),
    ("fal", "rate-limit-me", lambda o: o.submit.status_code == 429),
    ("fal", "server-error", lambda o: o.submit.status_code == 500),
    ("fal", "moderate-me", lambda o: o.final["detail"][0]["type"] == "content_policy_violation"),
    ("fal", "nsfw-me", lambda o: o.final["has_nsfw_concepts"] == [True]),
    ("fal", "slow", lambda o: o.polls == 4 and o.final["status_code"] == 200),
    ("replicate", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "30"),
    ("replicate", "server-error", lambda o: o.submit.status_code == 500),
    ("replicate", "moderate-me", lambda o: "(E005)" in o.final["error"]),
    ("replicate", "nsfw-me", lambda o: "NSFW" in o.final["error"]),
    ("replicate", "fail-me", lambda o: o.final["status"] == "failed"),
    ("replicate", "slow", lambda o: o.polls == 4 and o.final["status"] == "succeeded"),
    ("dashscope", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "3"),
    ("dashscope", "server-error", lambda o: o.final["code"] == "InternalError"),
    ("dashscope", "moderate-me", lambda o: o.final["code"] == "DataInspectionFailed"),
    ("dashscope", "moderate-output", lambda o: o.final["output"]["code"]
     == "DataInspectionFailed"),
    ("dashscope", "fail-me", lambda o: o.final["output"]["code"] == "InternalError.Algo"),
    ("dashscope", "slow", lambda o: o.polls == 3
     and o.final["output"]["task_status"] == "SUCCEEDED"),
    ("kling", "rate-limit-me", lambda o: o.final["code"] == 1302
     and o.submit.headers["retry-after"] == "4"),
    ("kling", "no-credits", lambda o: o.final["code"] == 1102),
    ("kling", "server-error", lambda o: o.final["code"] == 5000),
    ("kling", "moderate-me", lambda o: o.final["code"] == 1301),
    ("kling", "moderate-output", lambda o: o.final["data"]["task_status"] == "failed"
     and "risk control" in o.final["data"]["task_status_msg"]),
    ("kling", "fail-me", lambda o: o.final["data"]["task_status"] == "failed"),
    ("kling", "slow", lambda o: o.polls == 4 and o.final["data"]["task_status"] == "succeed"),
    ("midjourney", "rate-limit-me", lambda o: o.submit.status_code == 429
     and o.submit.headers["retry-after"] == "7"),
    ("midjourney", "server-error", lambda o: o.submit.status_code == 500),
    ("midjourney", "queue-full", lambda o: o.final["code"] == 23),
    ("midjourney", "moderate-me", lambda o: o.final["code"] == 24),
    ("midjourney", "fail-me", lambda o: o.final["status"] == "FAILURE"),
    ("midjourney", "filter-me", lambda o: "image filters" in o.final["failReason"]),
    ("midjourney", "slow", lambda o: o.polls == 4 and o.final["status"] == "SUCCESS"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("vendor", "word", "check"), CASES, ids=[f"{vendor}-{word}" for vendor, word, _ in CASES]
)
async def test_the_switch_gets_the_vendors_answer(vendor: str, word: str, check: Check) -> None:
    outcome = await _run(vendor, f"a lighthouse {word}")
    async with contextlib.aclosing(outcome.http):
        assert check(outcome), (outcome.submit.status_code, outcome.final)


PLAIN: dict[str, Check] = {
    "openai": lambda o: "b64_json" in o.final["data"][0],
    "xai": lambda o: o.final["data"][0]["respect_moderation"] is True,
    "reve": lambda o: o.final["content_violation"] is False and bool(o.final["image"]),
    "gemini": lambda o: o.final["candidates"][0]["finishReason"] == "STOP",
    "ark": lambda o: len(o.final["data"]) == 3 and all("url" in item for item in o.final["data"]),
    "ideogram": lambda o: o.final["data"][0]["url"] is not None,
    "bfl": lambda o: o.polls == 1 and o.final["status"] == "Ready",
    "fal": lambda o: o.polls == 1 and o.final["has_nsfw_concepts"] == [False],
    "replicate": lambda o: o.polls == 1 and o.final["status"] == "succeeded",
    "dashscope": lambda o: o.polls == 1 and o.final["output"]["task_status"] == "SUCCEEDED",
    "kling": lambda o: o.polls == 1 and o.final["data"]["task_status"] == "succeed",
    "midjourney": lambda o: o.polls == 1 and o.final["status"] == "SUCCESS",
}


@pytest.mark.parametrize("vendor", list(VENDORS))
async def test_a_prompt_without_a_switch_succeeds(vendor: str) -> None:
    assert set(PLAIN) == set(VENDORS)
    outcome = await _run(vendor, "a lighthouse")
    async with contextlib.aclosing(outcome.http):
        assert outcome.submit.status_code in (200, 201), outcome.submit.text
        assert PLAIN[vendor](outcome), outcome.final


@pytest.mark.parametrize(("vendor", "expired_status"), [("bfl", 403), ("replicate", 404)])
async def test_expire_fast_results_are_gone_after_their_first_download(
    vendor: str, expired_status: int
) -> None:
    outcome = await _run(vendor, "a lighthouse expire-fast")
    async with contextlib.aclosing(outcome.http):
        result_url = VENDORS[vendor].result_url
        assert result_url is not None
        url = result_url(outcome.final)
        assert (await outcome.http.get(url)).status_code == 200
        assert (await outcome.http.get(url)).status_code == expired_status


@pytest.mark.parametrize(("vendor", "status"), [("bfl", 200), ("replicate", 200)])
async def test_results_without_expire_fast_can_be_downloaded_again(
    vendor: str, status: int
) -> None:
    outcome = await _run(vendor, "a lighthouse")
    async with contextlib.aclosing(outcome.http):
        result_url = VENDORS[vendor].result_url
        assert result_url is not None
        url = result_url(outcome.final)
        for _ in range(2):
            assert (await outcome.http.get(url)).status_code == status
