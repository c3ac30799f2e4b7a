"""Midjourney follow-up actions: a new job that acts on a finished Midjourney job.

``POST /v2/images/midjourney/action`` is discriminated on ``action``. Grid actions (``upsample``,
``variation``) take an ``index`` and act on a four-image grid (a generation or a variation);
``inpaint``, ``outpaint`` and ``pan`` act on an upsample. The action runs where its parent ran:
the job's ``action`` carries the parent's provider, upstream model and task id, which the router
and the Midjourney adapter read.

Everything about the parent is checked in the same transaction that reserves the credits, before
the reservation, so a refused action charges nothing:

- not this account's job → 404;
- not a Midjourney job, or the wrong kind of parent → 400 naming ``parentJobId``;
- not COMPLETED yet → 409 (``ActionUnavailable``): the request is well formed and the parent may
  still finish, so it is a state conflict rather than bad input;
- a test-key action on a live parent or the reverse → 409: a sandbox job has no upstream task;
- a parent with no provider or upstream task id (finished before actions existed) → 409.

Idempotency, the queued-jobs cap and the reservation behave exactly as for a generation (the
helpers are shared with ``services.submit``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import uuid_utils
from PIL import Image, UnidentifiedImageError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.catalog.families.midjourney import ACTION_PRICES
from imagegate.catalog.fields import Uri
from imagegate.catalog.registry import DEFAULT_WEBHOOK_EVENTS, WebhookEventName, describe_errors
from imagegate.domain.idempotency import check_key, fingerprint
from imagegate.errors import ActionUnavailable, NotFound, ValidationFailed
from imagegate.observability.metrics import Metrics
from imagegate.providers.pool import SANDBOX, ProviderPool
from imagegate.queue.wakeup import Wakeup, notify_in_transaction
from imagegate.services.accounts import Caller
from imagegate.services.submit import Accepted, UrlCheck, admit, claim_key, retry_key_race
from imagegate.settings import Settings
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow, NewJob
from imagegate.types import Clock, JobStatus, Millis

__all__ = [
    "ACTION_PRICES",
    "MASK_MAX_LENGTH",
    "ActionSubmitter",
    "InpaintAction",
    "OutpaintAction",
    "PanAction",
    "UpsampleAction",
    "VariationAction",
    "action_request_schema",
    "parse_action",
]

ROUTE = "/v2/images/midjourney/action"
MODEL = "midjourney"
MASK_MAX_LENGTH = 12_000_000

GRID_ACTIONS = frozenset({"upsample", "variation"})
"""Actions that pick one image (``index``) of a four-image grid; the others edit an upsample."""


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("must be a UUID") from None


def _check_mask(value: str) -> str:
    """Strip a ``data:image/…;base64,`` prefix; the rest must be base64 of a readable image."""
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
            raise ValueError("must be base64, optionally prefixed data:image/...;base64,")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64-encoded image data") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ValueError("does not decode to an image") from None
    return value


ParentJobId = Annotated[
    str, AfterValidator(_check_uuid), Field(json_schema_extra={"format": "uuid"})
]
Index = Annotated[int, Field(ge=1, le=4)]
ZOOM_RATIOS = (1.5, 2)


def _check_zoom(value: float) -> float:
    if value not in ZOOM_RATIOS:
        raise ValueError("must be one of 1.5, 2")
    return value


ZoomRatio = Annotated[
    float, AfterValidator(_check_zoom), Field(json_schema_extra={"enum": list(ZOOM_RATIOS)})
]
Mask = Annotated[str, Field(min_length=1, max_length=MASK_MAX_LENGTH), AfterValidator(_check_mask)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    parentJobId: ParentJobId
    webhookUrl: Uri | None = None
    webhookEvents: Annotated[list[WebhookEventName] | None, Field(min_length=1)] = None


class UpsampleAction(_Action):
    """Upscale one image of a completed grid: one image, no grid (4 credits)."""

    model_config = ConfigDict(title="Midjourney upsample")
    action: Literal["upsample"]
    index: Index


class VariationAction(_Action):
    """A new four-image grid varying one image of a completed grid (16 credits)."""

    model_config = ConfigDict(title="Midjourney variation")
    action: Literal["variation"]
    index: Index


class InpaintAction(_Action):
    """Repaint the white area of ``mask`` on a completed upsample: a new grid (16 credits)."""

    model_config = ConfigDict(title="Midjourney inpaint")
    action: Literal["inpaint"]
    mask: Mask
    prompt: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class OutpaintAction(_Action):
    """Zoom out of a completed upsample by ``zoomRatio``: a new grid (16 credits)."""

    model_config = ConfigDict(title="Midjourney outpaint")
    action: Literal["outpaint"]
    zoomRatio: ZoomRatio


class PanAction(_Action):
    """Extend a completed upsample towards ``direction``: a new grid (16 credits)."""

    model_config = ConfigDict(title="Midjourney pan")
    action: Literal["pan"]
    direction: Literal["up", "down", "left", "right"]


AnyAction = UpsampleAction | VariationAction | InpaintAction | OutpaintAction | PanAction

_CLASSES: Mapping[str, type[AnyAction]] = {
    "upsample": UpsampleAction,
    "variation": VariationAction,
    "inpaint": InpaintAction,
    "outpaint": OutpaintAction,
    "pan": PanAction,
}


def parse_action(body: Any) -> AnyAction:
    """Validate a decoded body; ``ValidationFailed`` names each offending field.

    The discriminator is read by hand (as ``Catalog.parse`` reads ``model``) so error paths are
    the body's own field names, not pydantic's ``upsample.index``.
    """
    if not isinstance(body, dict):
        raise ValidationFailed.field("body", "must be a JSON object")
    if "action" not in body:
        raise ValidationFailed.field("action", "is required")
    kind = body["action"]
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValidationFailed.field("action", f"must be one of {', '.join(_CLASSES)}")
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed(describe_errors(exc.errors())) from None


def _read_action(body: Any) -> tuple[AnyAction, str]:
    """The action a body asks for, and the body's Idempotency-Key fingerprint."""
    return parse_action(body), fingerprint(ROUTE, body)


def action_request_schema() -> dict[str, Any]:
    """The ``MidjourneyActionRequest`` JSON schema, self-contained for an operation's body."""
    return {
        "title": "MidjourneyActionRequest",
        "oneOf": [cls.model_json_schema() for cls in _CLASSES.values()],
        "discriminator": {"propertyName": "action"},
    }


class ActionSubmitter:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        providers: ProviderPool,
        wakeup: Wakeup,
        settings: Settings,
        metrics: Metrics,
        check_webhook_url: UrlCheck | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._providers = providers
        self._wakeup = wakeup
        self._settings = settings
        self._metrics = metrics
        self._check_webhook_url = check_webhook_url

    async def submit(self, caller: Caller, body: Any, idempotency_key: str | None) -> Accepted:
        """``POST /v2/images/midjourney/action``: 202 with a new job, or an error, charging once."""
        key = check_key(idempotency_key)
        # A mask is up to 12 MB of base64, decoded and checked as an image (~40 ms), and the
        # body is fingerprinted whole (~60 ms): on a thread, so the event loop goes on serving.
        request, request_print = await asyncio.to_thread(_read_action, body)
        if request.webhookUrl and self._check_webhook_url is not None:
            await self._check_webhook_url(request.webhookUrl)
        cost = 0 if caller.is_test else ACTION_PRICES[request.action]
        return await retry_key_race(
            key, lambda: self._insert(caller, request, body, cost, key, request_print)
        )

    async def _insert(
        self,
        caller: Caller,
        request: AnyAction,
        body: Mapping[str, Any],
        cost: int,
        key: str | None,
        request_print: str,
    ) -> Accepted:
        now = self._clock.now_ms()
        job_id = str(uuid_utils.uuid7())
        async with self._db.transaction() as conn:
            replay = await claim_key(conn, self._settings, caller, key, request_print, job_id, now)
            if replay is not None:
                return replay
            parent = await self._parent(conn, caller, request)
            await admit(conn, self._settings, caller, job_id, cost, now, model=parent.model)
            await job_store.insert_job(
                conn, self._new_job(caller, request, body, parent, job_id, cost, now)
            )
            await job_store.add_event(
                conn, job_id, "queued", now, {"cost": cost, "parent": parent.id}
            )
            await notify_in_transaction(conn)
        self._wakeup.notify()
        self._metrics.jobs_submitted.labels(MODEL).inc()
        return Accepted(job_id, JobStatus.QUEUED)

    async def _parent(self, conn: AsyncConnection, caller: Caller, request: AnyAction) -> JobRow:
        """The parent job, if this action may run on it (see the module docstring)."""
        parent = await job_store.get_job(conn, request.parentJobId, caller.account_id)
        if parent is None:
            raise NotFound("Parent job not found")
        if parent.model != MODEL:
            raise ValidationFailed.field("parentJobId", f"must be a {MODEL} job")
        if parent.sandbox != caller.is_test:
            made_with = "a test key" if parent.sandbox else "a live key"
            raise ActionUnavailable(
                f"The parent job was made with {made_with}; act on it with the same kind of key"
            )
        if parent.job_status is not JobStatus.COMPLETED:
            raise ActionUnavailable(
                f"The parent job is {parent.status}; actions need a COMPLETED parent"
            )
        is_grid = parent.outputs_expected == 4
        is_upsample = (parent.action or {}).get("type") == "upsample"
        if request.action in GRID_ACTIONS and not is_grid:
            raise ValidationFailed.field(
                "parentJobId", f"{request.action} needs a four-image grid parent, not an upsample"
            )
        if request.action not in GRID_ACTIONS and not is_upsample:
            raise ValidationFailed.field(
                "parentJobId", f"{request.action} needs an upsample parent, not a grid"
            )
        has_task = bool(parent.provider_task_id) or parent.provider == SANDBOX
        if not (parent.provider and parent.upstream_model and has_task):
            raise ActionUnavailable(
                "The parent job has no upstream task to act on (it predates actions)"
            )
        if not caller.is_test and not self._providers.configured(parent.provider):
            raise ActionUnavailable(
                f"The provider that ran the parent job ({parent.provider}) is not configured"
            )
        return parent

    def _new_job(
        self,
        caller: Caller,
        request: AnyAction,
        body: Mapping[str, Any],
        parent: JobRow,
        job_id: str,
        cost: int,
        now: Millis,
    ) -> NewJob:
        action: dict[str, Any] = {
            "type": request.action,
            "parent_job_id": parent.id,
            "parent_task_id": parent.provider_task_id,
            "provider": parent.provider,
            "upstream_model": parent.upstream_model,
        }
        prompt = parent.prompt
        shown = dict(body)
        if isinstance(request, UpsampleAction | VariationAction):
            action["index"] = request.index
        elif isinstance(request, InpaintAction):
            action["mask"] = request.mask
            shown["mask"] = f"({len(request.mask)} base64 characters)"
            if request.prompt:
                action["prompt"] = request.prompt
                prompt = request.prompt
        elif isinstance(request, OutpaintAction):
            action["zoom_ratio"] = request.zoomRatio
        else:
            action["direction"] = request.direction
        events: list[str] = list(request.webhookEvents or DEFAULT_WEBHOOK_EVENTS)
        return NewJob(
            id=job_id,
            account_id=caller.account_id,
            api_key_id=caller.key_id,
            model=MODEL,
            prompt=prompt,
            input=shown,
            params=dict(parent.params),
            action=action,
            parent_job_id=parent.id,
            outputs_expected=1 if request.action == "upsample" else 4,
            sandbox=caller.is_test,
            credit_cost=cost,
            webhook_url=request.webhookUrl,
            webhook_events=events if request.webhookUrl else None,
            # A parent kept briefly (X-Retention-Days) was kept briefly on purpose: so is its child.
            retention_days=parent.retention_days,
            created_at=now,
            deadline_at=now + self._settings.job_deadline_seconds * 1000,
        )
