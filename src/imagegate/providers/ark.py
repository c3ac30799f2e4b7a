"""ByteDance Seedream on BytePlus ModelArk (or Volcengine Ark): ``POST /api/v3/images/generations``.

The call is synchronous, OpenAI-shaped and paid (a read timeout after sending fails the job
rather than paying twice). The host follows ``options["region"]``: ``byteplus`` (default,
``ark.ap-southeast.bytepluses.com``) or ``volcengine`` (``ark.cn-beijing.volces.com``); an explicit
``base_url`` (host only, without ``/api/v3``) wins. Keys and model ids are region-specific
(Volcengine ids carry ``doubao-``; accounts may use ``ep-…`` endpoint ids), so the route's
``upstream_model`` can be re-mapped with ``options["models"]``.

Params (``seedreamParams``) map as follows:

- ``size``: ``width``×``height`` when both are given (``aspect_ratio`` ``custom`` or absent); else
  the tier from ``size``/``resolution`` (``1K``, ``2K``, ``4K`` …) combined with ``aspect_ratio``
  into explicit pixels from BytePlus's 2K table (scaled for other tiers), because a bare tier
  lets the model pick the shape; Replicate-style ``regular``/``big``/``small`` (seedream-3) become
  ~1 MP / 2048 px longest / 512 px shortest; an explicit ``"WxH"`` passes through;
- ``image_input`` → ``image`` (URLs, which Ark downloads itself; with ``options["inline_inputs"]``
  they are fetched here and sent as data URIs, for input URLs Ark cannot reach);
- ``seed``, ``guidance_scale`` pass through; ``output_format`` ``jpg`` → ``jpeg``;
  ``enhance_prompt`` / ``use_pre_llm`` → ``optimize_prompt``;
- ``watermark`` is ``options["watermark"]`` (default off: Ark's own default stamps every image);
  ``response_format`` is ``options["response_format"]`` (default ``b64_json``: bytes arrive with
  the answer, no second download from Ark's 24-hour URLs).

More than one output uses ``sequential_image_generation: auto`` with ``max_images`` on the models
that document it (Seedream 4.x and 5.0 lite); the model may return fewer, so the rest are topped up
with single-image calls. Moderation is an HTTP 400 whose ``error.code`` names sensitive content or
risk detection (``InputTextSensitiveContentDetected``, ``OutputImageSensitiveContentDetected``,
``InputTextRiskDetection`` …), or the same code on one item of a group answer. A 200 that is
empty, not JSON, off the schema or with no image is ``UpstreamRejected``: the paid call was made,
so it is never resent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import httpx2
from pydantic import Field

from imagegate.errors import UpstreamMisconfigured, UpstreamModerated, UpstreamRejected
from imagegate.providers.base import (
    ProviderOptions,
    SyncAdapter,
    api_key,
    open_client,
    read_options,
)
from imagegate.providers.http import (
    clean_message,
    decode_base64,
    json_object_off_loop,
    post_json,
    raise_for_upstream,
    transport_error,
)
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    ProviderContext,
    Submitted,
)
from imagegate.settings import ProviderSettings

__all__ = [
    "REGIONS",
    "ArkAdapter",
    "Options",
    "ark_size",
    "create_adapter",
    "is_moderation_code",
    "supports_group",
]

NAME = "ark"
PATH = "/api/v3/images/generations"
REGIONS = {
    "byteplus": "https://ark.ap-southeast.bytepluses.com",
    "volcengine": "https://ark.cn-beijing.volces.com",
}
_TIER_2K = {
    (1, 1): (2048, 2048),
    (4, 3): (2368, 1776),
    (3, 4): (1776, 2368),
    (16, 9): (2816, 1584),
    (9, 16): (1584, 2816),
    (3, 2): (2496, 1664),
    (2, 3): (1664, 2496),
    (21, 9): (3136, 1344),
}
"""BytePlus's pixel sizes for the 2K tier per aspect ratio; other tiers scale linearly."""
_TIERS = {"1K": 0.5, "1.5K": 0.75, "2K": 1.0, "3K": 1.5, "4K": 2.0}
_PIXELS = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$")
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}


def is_moderation_code(code: str) -> bool:
    """Ark's content-policy codes: ``…SensitiveContentDetected…`` and ``…RiskDetection``."""
    return "SensitiveContent" in code or "RiskDetection" in code


def _multiple_of_16(value: float) -> int:
    return max(16, round(value / 16) * 16)


def _ratio(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, str) or (match := _RATIO.match(value)) is None:
        return None
    width, height = float(match[1]), float(match[2])
    return (width, height) if width > 0 and height > 0 else None


def _tier_pixels(tier: str, ratio: tuple[float, float]) -> str:
    factor = _TIERS[tier]
    key = (round(ratio[0]), round(ratio[1]))
    width: float
    height: float
    if key in _TIER_2K and key == ratio:
        width, height = _TIER_2K[key]
    else:  # same area as the 2K square, in the requested shape
        area = 2048 * 2048
        width = math.sqrt(area * ratio[0] / ratio[1])
        height = area / width
    return f"{_multiple_of_16(width * factor)}x{_multiple_of_16(height * factor)}"


def ark_size(params: Mapping[str, Any]) -> str | None:
    """The ``size`` field for these params, or ``None`` to leave Ark's default."""
    width, height = params.get("width"), params.get("height")
    aspect = params.get("aspect_ratio")
    if isinstance(width, int) and isinstance(height, int) and aspect in (None, "custom"):
        return f"{width}x{height}"
    ratio = _ratio(aspect)
    for name in ("size", "resolution"):
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        if _PIXELS.match(value):
            return value.strip().replace("×", "x").replace("*", "x")
        tier = value.strip().upper()
        if tier in _TIERS:
            return tier if ratio is None else _tier_pixels(tier, ratio)
        shape = ratio or (1.0, 1.0)
        if value == "regular":
            return _tier_pixels("1K", shape)
        if value in ("big", "small"):  # 2048 px on the longest side, or 512 on the shortest
            scale = 2048 / max(shape) if value == "big" else 512 / min(shape)
            return f"{_multiple_of_16(shape[0] * scale)}x{_multiple_of_16(shape[1] * scale)}"
    if ratio is not None:
        return _tier_pixels("2K", ratio)
    return None


def supports_group(model: str) -> bool:
    """Seedream 4.x and 5.0 lite document ``sequential_image_generation``; 3.0 and 5.0 Pro don't."""
    return "seedream-4" in model or ("seedream-5" in model and "pro" not in model)


def _error(response: httpx2.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


class Options(ProviderOptions):
    region: str = "byteplus"
    """``byteplus`` or ``volcengine``; ignored when ``base_url`` is set."""
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id or catalog model id → the id to send (``doubao-…``, ``ep-…``)."""
    watermark: bool = False
    response_format: Literal["b64_json", "url"] = "b64_json"
    inline_inputs: bool = False
    """Send input images as ``data:`` URIs instead of URLs."""


class ArkAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        context: ProviderContext,
        *,
        models: Mapping[str, str],
        watermark: bool,
        response_format: str,
        inline_inputs: bool,
    ) -> None:
        super().__init__(client)
        self._context = context
        self._models = dict(models)
        self._watermark = watermark
        self._response_format = response_format
        self._inline_inputs = inline_inputs

    def model_id(self, request: GenerationRequest) -> str:
        upstream = request.route.upstream_model
        return self._models.get(upstream) or self._models.get(request.model) or upstream

    async def payload(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        """The body for one call producing one image (group fields are added by ``submit``)."""
        params = request.params
        body: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "response_format": self._response_format,
            "watermark": self._watermark,
        }
        if (size := ark_size(params)) is not None:
            body["size"] = size
        if isinstance(params.get("seed"), int):
            body["seed"] = params["seed"]
        if isinstance(params.get("guidance_scale"), int | float):
            body["guidance_scale"] = params["guidance_scale"]
        output_format = params.get("output_format")
        if isinstance(output_format, str) and output_format.lower() in _FORMATS:
            body["output_format"] = _FORMATS[output_format.lower()]
        for name in ("enhance_prompt", "use_pre_llm"):
            if isinstance(params.get(name), bool):
                body["optimize_prompt"] = params[name]
        images = [await self._input(str(url)) for url in params.get("image_input") or ()]
        if images:
            body["image"] = images[0] if len(images) == 1 else images
        return body

    async def _input(self, url: str) -> str:
        if not self._inline_inputs:
            return url
        fetched = await self._context.fetch_input(url)
        encoded = base64.b64encode(fetched.data).decode("ascii")
        return f"data:{fetched.content_type};base64,{encoded}"

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        model = self.model_id(request)
        body = await self.payload(request, model)
        wanted = max(1, request.outputs)
        images: list[OutputImage] = []
        served = model
        if wanted > 1 and supports_group(model):
            group = {
                **body,
                "sequential_image_generation": "auto",
                "sequential_image_generation_options": {"max_images": wanted},
            }
            answer = await self._generate(group)
            images += await asyncio.to_thread(self._images, answer)  # base64: off the loop
            served = str(answer.get("model") or model)
        while len(images) < wanted:
            answer = await self._generate(body)
            images += await asyncio.to_thread(self._images, answer)
            served = str(answer.get("model") or model)
        return Finished(images=images[:wanted], served_model=served)

    async def _generate(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            response = await post_json(self._client, PATH, dict(body))
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        if response.status_code >= 300:
            error = _error(response)
            code = str(error.get("code") or "")
            message = clean_message(error.get("message") or response.reason_phrase)
            if is_moderation_code(code):
                raise UpstreamModerated(
                    f"Provider returned an error: content policy violation ({code}: {message})",
                    provider=NAME,
                )
            if response.status_code == 404:
                raise UpstreamMisconfigured(
                    f"ark does not serve model {body.get('model')!r} "
                    f"(map it in options.models): {message}",
                    provider=NAME,
                )
            raise_for_upstream(response, NAME, f"{code}: {message}" if code else message)
        return await json_object_off_loop(response, NAME)

    def _images(self, answer: Mapping[str, Any]) -> list[OutputImage]:
        """The images of one answer; a body off the schema is ``UpstreamRejected`` (not retried:
        the paid call was made and may have been billed)."""
        data = answer.get("data")
        if data is not None and not isinstance(data, list):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: data is not a list", provider=NAME
            )
        images: list[OutputImage] = []
        for item in data or ():
            if not isinstance(item, dict):
                raise UpstreamRejected(
                    f"{NAME} answered with an unexpected body: an item is not an object",
                    provider=NAME,
                )
            error = item.get("error")
            if isinstance(error, dict):
                code = str(error.get("code") or "")
                message = clean_message(error.get("message") or code)
                if is_moderation_code(code):
                    raise UpstreamModerated(
                        f"Provider returned an error: content policy violation ({code}: {message})",
                        provider=NAME,
                    )
                raise UpstreamRejected(f"Provider returned an error: {message}", provider=NAME)
            content_type = f"image/{item.get('output_format') or 'jpeg'}"
            if isinstance(item.get("b64_json"), str) and item["b64_json"]:
                try:
                    raw = decode_base64(item["b64_json"])
                except (binascii.Error, ValueError) as exc:
                    raise UpstreamRejected(
                        "ark sent an image that is not valid base64", provider=NAME
                    ) from exc
                images.append(OutputImage(data=raw, content_type=content_type))
            elif isinstance(item.get("url"), str) and item["url"]:
                images.append(OutputImage(url=item["url"], content_type=content_type))
            else:
                raise UpstreamRejected(
                    f"{NAME} answered with an unexpected body: an item without an image",
                    provider=NAME,
                )
        if not images:
            raise UpstreamRejected(f"{NAME} returned no image", provider=NAME)
        return images


def create_adapter(config: ProviderSettings, context: ProviderContext) -> ArkAdapter:
    options = read_options(NAME, Options, config.options)
    region = options.region
    if config.base_url is None and region not in REGIONS:
        raise ValueError(f"ark: unknown region {region!r}; expected one of {sorted(REGIONS)}")
    headers = {"Authorization": f"Bearer {api_key(config)}"}
    return ArkAdapter(
        open_client(NAME, config, context, headers, default_base_url=REGIONS.get(region)),
        context,
        models=options.models,
        watermark=options.watermark,
        response_format=options.response_format,
        inline_inputs=options.inline_inputs,
    )
