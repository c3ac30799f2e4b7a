"""The OpenAI-compatible images API: OpenAI's parameters mapped onto a catalog model's params.

A ``/v1/images/generations`` or ``/v1/images/edits`` call becomes an ordinary
``POST /v2/images/generate`` body and goes through the same ``Submitter`` (validation,
Idempotency-Key, credits), then waits for the job with ``JobService.wait``.

When the process runs workers, the job runs in the request's own task instead of waiting for a
worker's claim (``services.direct_jobs``).

The mapping is read from each model's params class, so every family follows the same rules
(``docs/openai.md`` has the table per family):

- ``n`` → the model's image count (``number_of_images``, ``num_images`` or ``n``);
- ``size`` ``WxH`` → ``aspect_ratio`` (the reduced ratio; 1792x1024 is 16:9);
- ``quality``, ``background``, ``output_format``, ``style``, ``moderation`` → the field of that
  name (``jpeg`` is written ``jpg`` where the model spells it so);
- edits: ``image`` → the model's input-image field (``input_images``, ``image_input``,
  ``image``, ``image_url``), ``mask`` → ``mask``.

``auto`` (and ``standard`` quality) always means the model's default. A value the model
cannot honour is a ``ValidationFailed`` naming the OpenAI parameter, never silently dropped.
"""

from __future__ import annotations

import asyncio
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

from imagegate.catalog import Catalog
from imagegate.catalog.spec import ModelSpec
from imagegate.errors import ImagegateError, ValidationFailed
from imagegate.presenters_openai import image_records, images_body
from imagegate.services.accounts import Caller
from imagegate.services.direct_jobs import DirectJobs
from imagegate.services.jobs import JobService
from imagegate.services.submit import Submitter
from imagegate.services.uploads import UploadService
from imagegate.storage.port import ObjectStore
from imagegate.store.jobs import JobRow
from imagegate.types import JobStatus

__all__ = [
    "COMMON_PARAMS",
    "ImageFile",
    "JobDidNotFinish",
    "JobEndedBadly",
    "OpenAIImages",
    "ParamMap",
    "param_map",
]

ResponseFormat = Literal["url", "b64_json"]

COMMON_PARAMS = frozenset(
    {"model", "prompt", "n", "size", "quality", "background", "output_format", "style"}
    | {"moderation", "response_format", "user"}
)
"""The OpenAI parameters both endpoints take (edits add ``image`` and ``mask``)."""


def _default_format(spec: ModelSpec) -> ResponseFormat:
    """How a call without ``response_format`` is answered: as OpenAI answers that model.

    OpenAI's GPT image models always answer base64 (their docs' own examples read
    ``data[0].b64_json``); DALL·E answers URLs unless asked otherwise. Every other model
    answers URLs, the lighter answer. ``response_format`` is honoured for every model.
    """
    return "b64_json" if spec.family == "gpt-image" else "url"


_COUNT_FIELDS = ("number_of_images", "num_images", "n")
_LIST_IMAGE_FIELDS = ("input_images", "image_input")
_SINGLE_IMAGE_FIELDS = ("image", "image_url")
_SAME_NAME = ("quality", "background", "output_format", "style", "moderation")
_NAMED_SIZES = {"1792x1024": "16:9", "1024x1792": "9:16"}


class JobDidNotFinish(ImagegateError):
    """The job did not finish in time"""

    code = "job_timeout"

    def __init__(self, job_id: str, seconds: float) -> None:
        super().__init__(
            f"Job {job_id} did not finish within {seconds:g} s; it goes on: GET /v2/jobs/{job_id}"
        )
        self.job_id = job_id


class JobEndedBadly(ImagegateError):
    """The job failed"""

    code = "job_failed"

    def __init__(self, job: JobRow) -> None:
        reason = job.error or "no reason given"
        super().__init__(f"Job {job.id} ended {job.status}: {reason}")
        self.job = job
        self.code = job.error_code or (
            "job_cancelled" if job.status == "CANCELLED" else "job_failed"
        )


@dataclass(frozen=True)
class ImageFile:
    """One uploaded file of an edit request."""

    data: bytes


@dataclass(frozen=True)
class ParamMap:
    """Where a model takes each OpenAI parameter (None: it does not take it)."""

    spec: ModelSpec
    count: str | None
    size: str | None
    same_name: tuple[str, ...]
    images: str | None
    images_many: bool
    mask: str | None
    choices: Mapping[str, tuple[str, ...]]
    """The values the size field and each same-name field allow (``()``: any)."""

    def openai_name(self, field: str) -> str | None:
        """The OpenAI parameter a params field stands for."""
        if field == self.count:
            return "n"
        if field == self.size:
            return "size"
        if field == self.images:
            return "image"
        if field == self.mask:
            return "mask"
        return field if field in self.same_name else None


_MAPS: dict[str, ParamMap] = {}
"""Each model's map, read once: reading the params class's fields and their ``Literal``
choices on every call cost a ``/v1`` call ~8 µs of the event loop."""


def param_map(spec: ModelSpec) -> ParamMap:
    """Read from the model's params class where it takes each OpenAI parameter."""
    known = _MAPS.get(spec.id)
    if known is not None and known.spec is spec:
        return known
    fields = spec.params.model_fields
    images_many = next((f for f in _LIST_IMAGE_FIELDS if f in fields), None)
    images_one = next((f for f in _SINGLE_IMAGE_FIELDS if f in fields), None)
    size = "aspect_ratio" if "aspect_ratio" in fields else None
    same_name = tuple(f for f in _SAME_NAME if f in fields)
    mapping = ParamMap(
        spec=spec,
        count=next((f for f in _COUNT_FIELDS if f in fields), None),
        size=size,
        same_name=same_name,
        images=images_many or images_one,
        images_many=images_many is not None,
        mask="mask" if "mask" in fields else None,
        choices={name: _choices(fields[name]) for name in (*same_name, size) if name is not None},
    )
    _MAPS[spec.id] = mapping
    return mapping


def _choices(field: FieldInfo) -> tuple[str, ...]:
    """The string values a ``Literal`` field (optionally nullable) allows; () when any."""
    annotation = field.annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    return ()


def _ratio(size: str) -> str:
    if size in _NAMED_SIZES:
        return _NAMED_SIZES[size]
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise ValidationFailed.field("size", "must be auto or WIDTHxHEIGHT, e.g. 1024x1024")
    divisor = math.gcd(int(width), int(height))
    return f"{int(width) // divisor}:{int(height) // divisor}"


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationFailed.field(name, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValidationFailed.field(name, "must be an integer")


def _refuse(name: str, model: str, what: str) -> ValidationFailed:
    return ValidationFailed.field(name, f"{model} {what}")


def build_body(mapping: ParamMap, request: Mapping[str, Any]) -> dict[str, Any]:
    """The Apiframe generate body for an OpenAI request (``image`` and ``mask`` not included)."""
    spec = mapping.spec
    params: dict[str, Any] = {}
    n = _int("n", request["n"]) if request.get("n") is not None else 1
    if mapping.count is not None:
        if "n" in request and request["n"] is not None:
            params[mapping.count] = n
    elif n != 1:
        raise _refuse("n", spec.id, "makes one image per request (n must be 1)")
    size = request.get("size")
    if size is not None and size != "auto":
        if not isinstance(size, str):
            raise ValidationFailed.field("size", "must be a string")
        if mapping.size is None:
            raise _refuse("size", spec.id, "takes no size (send auto or leave it out)")
        ratio = _ratio(size)
        allowed = mapping.choices[mapping.size]
        if allowed and ratio not in allowed:
            sizes = ", ".join(allowed)
            raise _refuse(
                "size", spec.id, f"does not make {size} ({ratio}); aspect ratios: {sizes}"
            )
        params[mapping.size] = ratio
    for name in ("quality", "background", "output_format", "style", "moderation"):
        value = request.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationFailed.field(name, "must be a string")
        defaulted = value == "auto" or (name == "quality" and value == "standard")
        if name not in mapping.same_name:
            if defaulted:
                continue
            raise _refuse(name, spec.id, f"takes no {name} (send auto or leave it out)")
        allowed = mapping.choices[name]
        if name == "output_format" and value == "jpeg" and "jpg" in allowed:
            value = "jpg"
        if defaulted and allowed and value not in allowed:
            continue
        params[name] = value
    body: dict[str, Any] = {"model": spec.id, "prompt": request.get("prompt")}
    if "prompt" not in request:
        body.pop("prompt")
    if params:
        body[spec.params_key] = params
    return body


def _translate(error: ValidationFailed, mapping: ParamMap) -> ValidationFailed:
    """The catalog's JSON paths (``gptImageParams.quality``) as OpenAI parameter names."""
    details: dict[str, list[str]] = {}
    prefix = mapping.spec.params_key + "."
    for path, rules in error.details.items():
        name = path
        if path.startswith(prefix):
            field = path[len(prefix) :].split(".")[0]
            name = mapping.openai_name(field) or path
        details.setdefault(name, []).extend(rules)
    return ValidationFailed(details, message=error.message)


def first_problem(error: ValidationFailed) -> tuple[str | None, str]:
    """The parameter and a one-line message for OpenAI's error shape."""
    if not error.details:
        return None, error.message
    param, rules = next(iter(error.details.items()))
    return param, f"{param}: {'; '.join(rules)}"


class OpenAIImages:
    """``/v1/images/generations`` and ``/v1/images/edits``: submit, wait, answer OpenAI's shape."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        submitter: Submitter,
        jobs: JobService,
        uploads: UploadService,
        store: ObjectStore,
        wait_seconds: float,
        direct: DirectJobs,
    ) -> None:
        self._catalog = catalog
        self._submitter = submitter
        self._jobs = jobs
        self._uploads = uploads
        self._store = store
        self._wait = wait_seconds
        self._direct = direct

    def models(self) -> list[tuple[str, str]]:
        """Every catalog model as ``(id, family)``."""
        return [(spec.id, spec.family) for spec in self._catalog]

    def _mapping(self, request: Mapping[str, Any], allowed: frozenset[str]) -> ParamMap:
        unknown = sorted(set(request) - allowed)
        if unknown:
            raise ValidationFailed.field(unknown[0], "is not a parameter of this endpoint")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationFailed.field("model", "is required: a model id from GET /v1/models")
        spec = self._catalog.get(model)
        if spec is None:
            raise ValidationFailed.field("model", f"unknown model {model!r}")
        response_format = request.get("response_format")
        if response_format not in (None, "url", "b64_json"):
            raise ValidationFailed.field("response_format", "must be url or b64_json")
        return param_map(spec)

    async def generate(
        self, caller: Caller, request: Mapping[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        """``POST /v1/images/generations`` with a decoded JSON body."""
        if not isinstance(request, Mapping):
            raise ValidationFailed.field("body", "must be a JSON object")
        mapping = self._mapping(request, COMMON_PARAMS)
        body = build_body(mapping, request)
        return await self._run(caller, mapping, body, request, idempotency_key)

    async def edit(
        self,
        caller: Caller,
        request: Mapping[str, Any],
        images: Sequence[ImageFile],
        mask: ImageFile | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """``POST /v1/images/edits``: the images (and mask) are stored as uploads first."""
        mapping = self._mapping(request, COMMON_PARAMS)
        model = mapping.spec.id
        if not images:
            raise ValidationFailed.field("image", "is required (one or more image files)")
        if mapping.images is None:
            raise _refuse("image", model, "takes no input image")
        if len(images) > 1 and not mapping.images_many:
            raise _refuse("image", model, "takes one input image")
        if mask is not None and mapping.mask is None:
            raise _refuse("mask", model, "takes no mask")
        body = build_body(mapping, request)
        urls = [await self._upload(caller, "image", image) for image in images]
        params = body.setdefault(mapping.spec.params_key, {})
        params[mapping.images] = urls if mapping.images_many else urls[0]
        if mask is not None and mapping.mask is not None:
            params[mapping.mask] = await self._upload(caller, "mask", mask)
        return await self._run(caller, mapping, body, request, idempotency_key)

    async def _upload(self, caller: Caller, param: str, image: ImageFile) -> str:
        try:
            upload = await self._uploads.create(caller, image.data)
        except ValidationFailed as exc:
            rules = [rule for found in exc.details.values() for rule in found]
            raise ValidationFailed({param: rules}, message=exc.message) from None
        return str(upload["url"])

    async def _run(
        self,
        caller: Caller,
        mapping: ParamMap,
        body: dict[str, Any],
        request: Mapping[str, Any],
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + self._wait
        claim = self._direct.claim()
        try:
            accepted = await self._submitter.generate(caller, body, idempotency_key, claim=claim)
        except ValidationFailed as exc:
            raise _translate(exc, mapping) from None
        answer_format = request.get("response_format") or _default_format(mapping.spec)
        inline = answer_format == "b64_json"
        stored: dict[str, bytes] = {}  # the images of a step run here, as it stored them
        job = await self._direct.finish(caller, accepted, deadline, stored if inline else None)
        if job.status != JobStatus.COMPLETED.value:
            if JobStatus(job.status).is_terminal:
                raise JobEndedBadly(job)
            raise JobDidNotFinish(job.id, self._wait)
        if inline:
            contents = {
                r.key: stored[r.key] if r.key in stored else await self._store.get(r.key)
                for r in image_records(job)
            }
            return images_body(job, contents=contents)
        signed = await self._jobs.sign(job)
        return images_body(job, urls=signed.urls)
