"""The fake OpenAI answers a fixed picture when given one (the benchmarks' cost-free upstream)."""

from __future__ import annotations

import base64

import httpx2

from imagegate.testing.fake_upstream import create_app

PICTURE = b"\x89PNG\r\n\x1a\n" + b"benchmark picture"


async def _generate(app: object, body: dict[str, object]) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://openai.test") as http:
        return await http.post(
            "/v1/images/generations",
            json=body,
            headers={"Authorization": "Bearer sk-fake-openai"},
        )


async def test_every_image_is_the_given_picture() -> None:
    app = create_app("openai", picture=PICTURE)

    answer = await _generate(app, {"model": "gpt-image-1.5", "prompt": "a", "n": 2})

    assert answer.status_code == 200
    assert [base64.b64decode(item["b64_json"]) for item in answer.json()["data"]] == [PICTURE] * 2


async def test_without_a_picture_each_prompt_is_drawn() -> None:
    app = create_app("openai")

    first = await _generate(app, {"model": "gpt-image-1.5", "prompt": "a"})
    second = await _generate(app, {"model": "gpt-image-1.5", "prompt": "b"})

    images = [base64.b64decode(a.json()["data"][0]["b64_json"]) for a in (first, second)]
    assert images[0].startswith(b"\x89PNG") and images[0] != images[1]
