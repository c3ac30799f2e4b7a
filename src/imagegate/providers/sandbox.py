"""The built-in ``sandbox`` provider: real images rendered locally, for test keys and demos.

Every model runs here for test keys, and for live keys when an operator routes a model to
``sandbox``. Images are drawn with Pillow and are deterministic: the same prompt, seed, size and
format give the same bytes. The requested aspect ratio or size, output count and format (PNG,
JPEG, WebP) are honoured; the longest side is capped at ``max_side`` so a "4K" request stays cheap.

It behaves like a polled vendor: ``submit`` answers with a task, and ``poll`` reports progress in
``steps`` equal steps until ``latency`` seconds have passed on the injected clock. With a latency
of 0 it answers at once, like a synchronous vendor. The task state (start time, seed) travels in
the job row, so a restarted worker resumes the same task.

Directives in the prompt drive tests and demos:

- ``[[latency:N]]`` overrides the latency for this job (seconds);
- ``[[fail:KIND]]`` fails the job when its result is due: ``moderated``, ``rejected``,
  ``retryable``, ``retryable-once`` (fails one time, then succeeds), ``misconfigured``, ``lost``;
  ``[[fail:submit-retryable]]`` fails the submit itself.

Options (``IMAGEGATE_PROVIDERS__SANDBOX__OPTIONS__…``): ``latency``, ``steps``, ``max_side``, and
``submit_log`` — a file to which every submit appends ``<job id> <task id>`` (the crash test counts
submits with it).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import os
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from PIL import Image, ImageDraw
from pydantic import Field

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers.base import ProviderOptions, read_options
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.types import Clock, SystemClock

__all__ = ["Options", "SandboxAdapter", "create_adapter", "output_size"]

NAME = "sandbox"
_DIRECTIVE = re.compile(r"\[\[(\w+):([\w.\-]+)\]\]")
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_PIXELS = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$")
_MJ_RATIO = re.compile(r"--(?:ar|aspect)\s+(\d+:\d+)")
_NAMED_SIZES = {
    "square": (1, 1),
    "square_hd": (1, 1),
    "portrait": (2, 3),
    "landscape": (3, 2),
    "portrait_4_3": (3, 4),
    "portrait_16_9": (9, 16),
    "landscape_4_3": (4, 3),
    "landscape_16_9": (16, 9),
}
_TIERS = {"0.5k": 512, "1k": 1024, "2k": 2048, "4k": 4096}
_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


def _directives(prompt: str) -> dict[str, str]:
    return {name.lower(): value.lower() for name, value in _DIRECTIVE.findall(prompt)}


def _ratio(value: str) -> tuple[float, float] | None:
    match = _RATIO.match(value)
    if match is None:
        return None
    width, height = float(match[1]), float(match[2])
    return (width, height) if width > 0 and height > 0 else None


def output_size(params: Mapping[str, Any], prompt: str, max_side: int) -> tuple[int, int]:
    """The pixel size the params ask for, scaled down so the longest side is ≤ ``max_side``."""
    width, height, longest = 1024.0, 1024.0, 1024
    if isinstance(params.get("width"), int) and isinstance(params.get("height"), int):
        width, height = params["width"], params["height"]
    for name in ("size", "resolution", "image_size", "imageSize"):
        value = params.get(name)
        if not isinstance(value, str):
            continue
        if (match := _PIXELS.match(value)) is not None:
            width, height = float(match[1]), float(match[2])
        elif value.lower() in _TIERS:
            longest = _TIERS[value.lower()]
        elif value in _NAMED_SIZES:
            width, height = _NAMED_SIZES[value]
        elif (ratio := _ratio(value)) is not None:
            width, height = ratio
    aspect = params.get("aspect_ratio") or params.get("aspectRatio")
    if not isinstance(aspect, str) and (match := _MJ_RATIO.search(prompt)) is not None:
        aspect = match[1]
    if isinstance(aspect, str) and (ratio := _ratio(aspect)) is not None:
        width, height = ratio
    if max(width, height) < 64:  # a ratio, not pixels
        scale = longest / max(width, height)
        width, height = width * scale, height * scale
    scale = min(1.0, max_side / max(width, height))
    return max(16, round(width * scale)), max(16, round(height * scale))


def _output_format(params: Mapping[str, Any]) -> tuple[str, str]:
    for name in ("output_format", "outputFormat", "format", "mime_type"):
        value = params.get(name)
        if isinstance(value, str):
            key = value.lower().removeprefix("image/")
            if key in _FORMATS:
                return _FORMATS[key]
    return _FORMATS["png"]


def render(prompt: str, seed: int, index: int, size: tuple[int, int], fmt: str) -> bytes:
    """One deterministic picture: a gradient, a few shapes and the prompt's first words."""
    rng = random.Random(f"{seed}:{index}:{prompt}")
    width, height = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), gradient)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(4, min(size) // 12), max(8, min(size) // 3))
        colour = tuple(rng.randrange(256) for _ in range(3))
        box = (x - radius, y - radius, x + radius, y + radius)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    caption = _DIRECTIVE.sub("", prompt).strip()[:60]
    draw.text((8, 8), f"{caption} #{index + 1}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    options = {} if fmt == "PNG" else {"quality": 85}
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _grid(images: list[bytes], size: tuple[int, int], fmt: str) -> bytes:
    width, height = size
    grid = Image.new("RGB", (width * 2, height * 2))
    for n, data in enumerate(images[:4]):
        grid.paste(Image.open(io.BytesIO(data)), ((n % 2) * width, (n // 2) * height))
    buffer = io.BytesIO()
    grid.save(buffer, format=fmt)
    return buffer.getvalue()


class _Drawn(NamedTuple):
    images: list[bytes]
    grid: bytes | None


def _render_all(
    prompt: str, seed: int, count: int, size: tuple[int, int], fmt: str, grid: bool
) -> _Drawn:
    """A job's pictures (and Midjourney's grid of four), drawn and encoded on a thread of the
    loop's executor. A 1024-pixel picture takes 25-60 ms of CPU (JPEG to WebP), a Midjourney job
    five of them: on the event loop that stalled every request the process served (a health
    check took 55-220 ms while a hundred sandbox jobs finished). Pillow lets go of the GIL while
    it draws and encodes, so the loop runs meanwhile (the longest wait for it ~10 ms)."""
    images = [render(prompt, seed, n, size, fmt) for n in range(count)]
    return _Drawn(images, _grid(images, size, fmt) if grid else None)


class Options(ProviderOptions):
    latency: float = Field(default=1.5, ge=0)
    """Seconds a job takes (``sandbox_latency_seconds`` fills it in)."""
    steps: int = 3
    """Progress steps reported while a job runs (``sandbox_progress_steps`` fills it in)."""
    max_side: int = Field(default=1024, gt=0)
    """Longest side of rendered images, in pixels."""
    submit_log: str | None = None
    """A file every submit appends ``<job id> <task id>`` to (the crash tests count submits)."""


class SandboxAdapter:
    name = NAME
    supports_cancel = True

    def __init__(
        self,
        clock: Clock,
        *,
        latency: float = 1.5,
        steps: int = 3,
        max_side: int = 1024,
        submit_log: str | None = None,
    ) -> None:
        self._clock = clock
        self._latency = latency
        self._steps = max(1, steps)
        self._max_side = max_side
        self._submit_log = submit_log
        self._failed_once: set[str] = set()
        self.cancelled: list[str] = []

    def _seed(self, request: GenerationRequest) -> int:
        seed = request.params.get("seed")
        if isinstance(seed, int):
            return seed
        digest = hashlib.sha256(f"{request.model}\n{request.prompt}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def _latency_for(self, directives: Mapping[str, str]) -> float:
        try:
            return max(0.0, float(directives["latency"]))
        except (KeyError, ValueError):
            return self._latency

    def _log_submit(self, job_id: str, task_id: str) -> None:
        if self._submit_log is None:
            return
        fd = os.open(self._submit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{job_id} {task_id}\n".encode())
        finally:
            os.close(fd)

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        directives = _directives(request.prompt)
        if directives.get("fail") == "submit-retryable":
            raise UpstreamRetryable("sandbox: simulated outage", provider=NAME, retry_after=1)
        task_id = f"sbx-{uuid.uuid4().hex}"
        self._log_submit(request.job_id, task_id)
        latency = self._latency_for(directives)
        if latency <= 0:
            return await self._result(request, task_id, self._seed(request))
        state = {"started_ms": self._clock.now_ms(), "seed": self._seed(request)}
        return Submitted(task_id, state, poll_after=latency / self._steps)

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        latency = self._latency_for(_directives(request.prompt))
        elapsed = (self._clock.now_ms() - int(task.state["started_ms"])) / 1000
        if elapsed < latency:
            step = latency / self._steps
            done = math.floor(elapsed / step + 1e-9)
            return Pending(progress=min(99, round(100 * done / self._steps)), poll_after=step)
        return await self._result(request, task.task_id, int(task.state["seed"]))

    async def _result(self, request: GenerationRequest, task_id: str, seed: int) -> Finished:
        self._fail_if_asked(request, task_id)
        size = output_size(request.params, request.prompt, self._max_side)
        fmt, content_type = _output_format(request.params)
        grid = request.model == "midjourney" and request.outputs == 4
        drawn = await asyncio.to_thread(
            _render_all, request.prompt, seed, request.outputs, size, fmt, grid
        )
        images = [OutputImage(data=data, content_type=content_type) for data in drawn.images]
        if drawn.grid is not None:
            mosaic = OutputImage(data=drawn.grid, content_type=content_type)
            return Finished(images=images, grid=mosaic, served_model=request.route.upstream_model)
        return Finished(images=images, served_model=request.route.upstream_model)

    def _fail_if_asked(self, request: GenerationRequest, task_id: str) -> None:
        kind = _directives(request.prompt).get("fail")
        if kind == "moderated":
            raise UpstreamModerated(provider=NAME)
        if kind == "rejected":
            raise UpstreamRejected("sandbox: the prompt asked to be rejected", provider=NAME)
        if kind == "retryable":
            raise UpstreamRetryable("sandbox: simulated outage", provider=NAME, retry_after=1)
        if kind == "retryable-once" and request.job_id not in self._failed_once:
            self._failed_once.add(request.job_id)
            raise UpstreamRetryable("sandbox: simulated blip", provider=NAME, retry_after=1)
        if kind == "misconfigured":
            raise UpstreamMisconfigured("sandbox: simulated bad credentials", provider=NAME)
        if kind == "lost":
            raise UpstreamTaskLost(f"sandbox: task {task_id} not found", provider=NAME)

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        self.cancelled.append(task.task_id)

    async def aclose(self) -> None:
        return None


def create_adapter(config: ProviderSettings, context: ProviderContext) -> SandboxAdapter:
    options = read_options(NAME, Options, config.options)
    return SandboxAdapter(
        context.clock or SystemClock(),
        latency=options.latency,
        steps=options.steps,
        max_side=options.max_side,
        submit_log=options.submit_log or None,
    )
