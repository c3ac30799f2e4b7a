"""Kling (Kuaishou) image adapter: ``POST /v1/images/generations`` → poll the task by id.

Kling authenticates with a short-lived HS256 JWT minted from an access key and a secret key
(``{"iss": ak, "exp": now + 1800, "nbf": now - 5}``). The adapter keeps one token and mints a new
one five minutes before expiry, on the injected clock, so a token never expires in flight.
Credentials come from ``options["access_key"]``/``options["secret_key"]`` or an ``api_key`` of
the form ``"ak:sk"``.

Every answer is the envelope ``{"code", "message", "request_id", "data"}`` where ``code`` 0 is
success; the numeric code decides the error class: 1000–1004 authentication, 1100–1103 account
or resource pack (not retried: the account must be topped up), 1200–1203 bad request,
1301 content safety, 1302/1303 rate or concurrency limits (retried), 1304 IP allow-list, 5000+
server errors (retried). Tasks go ``submitted`` → ``processing`` → ``succeed`` | ``failed``;
``succeed`` carries ``task_result.images[{index, url}]``, one per requested image (``n``).

``klingImageParams`` maps directly: ``model_name`` (else the route's model id when it is a Kling
version, else ``kling-v1``), ``negative_prompt`` (dropped with an input image, which Kling
refuses), ``image`` (URL, or raw base64 with ``options["inline_inputs"]``), ``image_fidelity``,
``aspect_ratio``; ``n`` is the job's output count. ``kling-v1-5`` needs ``image_reference`` with an
image: ``options["image_reference"]`` (default ``subject``).

Options: ``access_key``, ``secret_key``, ``resolution`` (``1k``/``2k``), ``image_reference``,
``inline_inputs``, ``poll_interval`` (seconds, default 3).

An answer we cannot read (not a JSON envelope, no ``data``, ``task_id`` or ``task_status``) is an
error: after a submit it is ``UpstreamRejected`` (Kling may have accepted and billed a task we
cannot find), after a poll ``UpstreamRetryable`` (asked again until the job deadline).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

import httpx2
from pydantic import Field

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.net.retry_after import retry_after_seconds
from imagegate.providers.base import (
    Adapter,
    ProviderOptions,
    api_key,
    open_client,
    read_options,
)
from imagegate.providers.http import (
    clean_message,
    malformed,
    raise_for_upstream,
    transport_error,
)
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
from imagegate.types import Clock, InputFetcher, SystemClock

__all__ = ["KlingAdapter", "Options", "TokenMinter", "create_adapter", "encode_jwt"]

NAME = "kling"
DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
TOKEN_LIFETIME = 1800
REFRESH_MARGIN = 300
_MODERATION_WORDS = ("risk", "safety", "sensitive", "inappropriate", "violat")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_jwt(claims: Mapping[str, Any], secret: str) -> str:
    """A compact HS256 JWT (PyJWT is not a dependency; HS256 is a dozen lines)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class TokenMinter:
    """Holds the current JWT and mints a fresh one shortly before it expires."""

    def __init__(self, access_key: str, secret_key: str, clock: Clock) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token = ""
        self._expires_at = 0

    def token(self) -> str:
        now = self._clock.now_ms() // 1000
        if now >= self._expires_at - REFRESH_MARGIN:
            self._expires_at = now + TOKEN_LIFETIME
            claims = {"iss": self._access_key, "exp": self._expires_at, "nbf": now - 5}
            self._token = encode_jwt(claims, self._secret_key)
        return self._token


def _error(code: int, message: str, response: httpx2.Response | None = None) -> UpstreamError:
    text = clean_message(f"{message} (code {code})")
    if 1000 <= code <= 1004 or code == 1304:
        return UpstreamMisconfigured(f"kling refused our credentials: {text}", provider=NAME)
    if 1100 <= code <= 1103:
        return UpstreamMisconfigured(
            f"kling account cannot pay for the task: {text}", provider=NAME
        )
    if code == 1301:
        return UpstreamModerated(
            f"Provider returned an error: content policy violation ({text})", provider=NAME
        )
    if code in (1302, 1303):
        retry_after = retry_after_seconds(response.headers) if response is not None else None
        return UpstreamRateLimited(f"kling: {text}", provider=NAME, retry_after=retry_after)
    if code >= 5000:
        retry_after = retry_after_seconds(response.headers) if response is not None else None
        return UpstreamRetryable(f"kling: {text}", provider=NAME, retry_after=retry_after)
    return UpstreamRejected(f"Provider returned an error: {text}", provider=NAME)


def _envelope(response: httpx2.Response, *, polling: bool) -> Mapping[str, Any]:
    """The ``data`` of a successful envelope; raise the mapped error otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise_for_upstream(response, NAME, response.text or None)
        raise malformed(NAME, "a body that is not a JSON envelope", polling=polling)
    code = body.get("code")
    if isinstance(code, int) and code != 0:
        raise _error(code, str(body.get("message") or ""), response)
    raise_for_upstream(response, NAME, str(body.get("message") or "") or None)
    data = body.get("data")
    if code != 0 or not isinstance(data, dict):
        raise malformed(NAME, "an envelope without code 0 and data", polling=polling)
    return data


def _index(value: Any) -> int:
    return value if isinstance(value, int) else 0


class Options(ProviderOptions):
    access_key: str | None = None
    """With ``secret_key``: the key pair, when ``api_key`` is not ``"ak:sk"``."""
    secret_key: str | None = None
    resolution: Literal["1k", "2k"] | None = None
    """Sent on every call when set."""
    image_reference: str = "subject"
    """Sent with an input image on ``kling-v1-5``, which requires it."""
    inline_inputs: bool = False
    """Send the input image as raw base64 instead of its URL."""
    poll_interval: float = Field(default=3.0, gt=0)


class KlingAdapter(Adapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        fetch_input: InputFetcher,
        tokens: TokenMinter,
        *,
        resolution: str | None = None,
        image_reference: str = "subject",
        inline_inputs: bool = False,
        poll_interval: float = 3.0,
    ) -> None:
        super().__init__(client)
        self._fetch_input = fetch_input
        self._tokens = tokens
        self._resolution = resolution
        self._image_reference = image_reference
        self._inline_inputs = inline_inputs
        self._poll_interval = poll_interval

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token()}"}

    @staticmethod
    def model_name(request: GenerationRequest) -> str:
        chosen = request.params.get("model_name")
        if isinstance(chosen, str) and chosen:
            return chosen
        upstream = request.route.upstream_model
        return upstream if upstream.startswith("kling-v") else "kling-v1"

    async def payload(self, request: GenerationRequest) -> dict[str, Any]:
        params = request.params
        model = self.model_name(request)
        body: dict[str, Any] = {
            "model_name": model,
            "prompt": request.prompt,
            "n": max(1, request.outputs),
        }
        if isinstance(params.get("aspect_ratio"), str):
            body["aspect_ratio"] = params["aspect_ratio"]
        if self._resolution:
            body["resolution"] = self._resolution
        image = params.get("image")
        if image:
            if self._inline_inputs:
                fetched = await self._fetch_input(str(image))
                body["image"] = base64.b64encode(fetched.data).decode("ascii")
            else:
                body["image"] = str(image)
            if isinstance(params.get("image_fidelity"), int | float):
                body["image_fidelity"] = float(params["image_fidelity"])
            if model == "kling-v1-5":
                body["image_reference"] = self._image_reference
        elif params.get("negative_prompt"):
            body["negative_prompt"] = str(params["negative_prompt"])
        return body

    async def submit(self, request: GenerationRequest) -> Submitted:
        body = await self.payload(request)
        try:
            response = await self._client.post(
                "/v1/images/generations", json=body, headers=self._headers()
            )
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        data = _envelope(response, polling=False)
        task_id = data.get("task_id")
        if not isinstance(task_id, str | int) or not str(task_id):
            raise malformed(NAME, "no task_id", polling=False)
        return Submitted(
            str(task_id),
            {"model_name": body["model_name"]},
            poll_after=self._poll_interval,
        )

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        try:
            response = await self._client.get(
                f"/v1/images/generations/{task.task_id}", headers=self._headers()
            )
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"kling: task {task.task_id} not found", provider=NAME)
        data = _envelope(response, polling=True)
        status = data.get("task_status")
        if not isinstance(status, str):
            raise malformed(NAME, "no task_status", polling=True)
        if status == "succeed":
            result = data.get("task_result")
            listed = result.get("images") if isinstance(result, dict) else None
            images = [image for image in listed or [] if isinstance(image, dict)]
            ordered = sorted(images, key=lambda image: _index(image.get("index")))
            urls = [str(image["url"]) for image in ordered if image.get("url")]
            if not urls:
                raise UpstreamRejected("kling: task succeeded without images", provider=NAME)
            return Finished(
                images=[OutputImage(url=url) for url in urls],
                served_model=str(task.state.get("model_name") or self.model_name(request)),
            )
        if status == "failed":
            reason = clean_message(data.get("task_status_msg") or "the task failed")
            if any(word in reason.lower() for word in _MODERATION_WORDS):
                raise UpstreamModerated(
                    f"Provider returned an error: content policy violation ({reason})",
                    provider=NAME,
                )
            raise UpstreamRejected(f"Provider returned an error: {reason}", provider=NAME)
        # ``submitted`` and ``processing``: Kling reports no percentage.
        return Pending(poll_after=self._poll_interval)


def _credentials(config: ProviderSettings, options: Options) -> tuple[str, str]:
    if options.access_key and options.secret_key:
        return options.access_key, options.secret_key
    access, _, secret = api_key(config).partition(":")
    if not access or not secret:
        raise ValueError("kling needs options access_key and secret_key, or an api_key 'ak:sk'")
    return access, secret


def create_adapter(config: ProviderSettings, context: ProviderContext) -> KlingAdapter:
    options = read_options(NAME, Options, config.options)
    access_key, secret_key = _credentials(config, options)
    headers = {"Accept": "application/json"}
    return KlingAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        context.fetch_input,
        TokenMinter(access_key, secret_key, context.clock or SystemClock()),
        resolution=options.resolution,
        image_reference=options.image_reference,
        inline_inputs=options.inline_inputs,
        poll_interval=options.poll_interval,
    )
