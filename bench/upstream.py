"""The zero-latency OpenAI-protocol upstream of the benchmarks.

imagegate.testing's fake OpenAI Images API, answering every image with one 64 KB PNG drawn once
at start (so the upstream spends no time drawing) and keeping no record of the requests it
served (its heap does not grow through the run), optionally after ``--latency`` seconds (an
``asyncio.sleep`` per request, so 2,000 waiting requests cost 2,000 coroutines, nothing more).

    python bench/upstream.py --port 9100 [--latency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import random
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


def delayed(app: Any, seconds: float) -> Any:
    """``app`` answering every API request ``seconds`` late."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if seconds > 0 and scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    app = delayed(create_app(picture=picture(), keep_requests=False), args.latency)
    # As the gateway does (``imagegate.cli.server.settle_garbage_collector``): with 2,000
    # requests open, full collections of the startup objects stalled this upstream 300-500 ms.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
        backlog=4096, timeout_keep_alive=120,
    )  # fmt: skip


if __name__ == "__main__":
    main()
