"""The zero-latency OpenAI-protocol upstream of the benchmarks.

imagegate.testing's fake OpenAI Images API, answering every image with one 64 KB PNG drawn once
at start (so the upstream spends no time drawing), optionally after ``--latency`` seconds (an
``asyncio.sleep`` per request, so 2,000 waiting requests cost 2,000 coroutines, nothing more),
noting when each answer left (``GET /bench/answers``).

    python bench/upstream.py --port 9100 [--latency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import random
import time
from typing import Any

import uvicorn
from PIL import Image

from imagegate.testing.fake_upstream.openai import create_app

PICTURE_BYTES = 64 * 1024


def picture(size: int = PICTURE_BYTES) -> bytes:
    """A PNG of about ``size`` bytes: random pixels do not compress, so its area sets its size."""
    rng = random.Random(13)
    side = int((size / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bench_app(app: Any, seconds: float) -> Any:
    """``app`` answering every API request ``seconds`` late, and noting when each answer left.

    ``GET /bench/answers`` lists ``[prompt, unix time]`` for every image answer fully sent, so a
    benchmark can time what happens after the upstream answered.
    """
    answers: list[tuple[str, float]] = []

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            if scope["type"] == "http" and scope["path"] == "/bench/answers":
                body = json.dumps(answers).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)
            return
        if seconds > 0:
            await asyncio.sleep(seconds)
        chunks: list[bytes] = []

        async def receiving() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def sending(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with contextlib.suppress(ValueError, AttributeError):
                    answers.append((str(json.loads(b"".join(chunks))["prompt"]), time.time()))

        await app(scope, receiving, sending)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    app = bench_app(create_app(picture=picture()), args.latency)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
        backlog=4096, timeout_keep_alive=120,
    )  # fmt: skip


if __name__ == "__main__":
    main()
