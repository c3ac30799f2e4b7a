"""Typed views of the API's answers: ``Job``, ``JobPage``, ``Model``, ``Upload``, ``Me``.

Each is a frozen dataclass built from the JSON body by ``from_dict``; the body itself stays in
``raw``, so a field this SDK does not know yet (or an Apiframe-only one) is never out of reach.
Field names are the wire names in snake_case.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TERMINAL",
    "Account",
    "ApiKeyInfo",
    "Download",
    "Job",
    "JobPage",
    "Me",
    "Model",
    "Output",
    "Upload",
]

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
"""The statuses a job never leaves."""


@dataclass(frozen=True)
class Output:
    """One stored output image of a completed job."""

    url: str
    content_type: str | None
    width: int | None
    height: int | None
    byte_size: int | None
    sha256: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        return cls(
            url=data["url"],
            content_type=data.get("contentType"),
            width=data.get("width"),
            height=data.get("height"),
            byte_size=data.get("byteSize"),
            sha256=data.get("sha256"),
        )


@dataclass(frozen=True)
class Job:
    """A job as ``GET /v2/jobs/{id}`` shows it. ``images`` are signed URLs that expire."""

    id: str
    status: str
    model: str
    progress: int
    images: list[str]
    grid_url: str | None
    outputs: list[Output]
    error: str | None
    credit_cost: int
    created_at: str | None
    completed_at: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the job has reached a status it never leaves."""
        return self.status in TERMINAL

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        result = data.get("result") or {}
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            model=str(data.get("model", "")),
            progress=int(data.get("progress") or 0),
            images=list(result.get("images") or []),
            grid_url=result.get("gridUrl"),
            outputs=[Output.from_dict(o) for o in data.get("outputs") or []],
            error=data.get("error"),
            credit_cost=int(data.get("creditCost") or 0),
            created_at=data.get("createdAt"),
            completed_at=data.get("completedAt"),
            raw=data,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /v2/jobs``, newest first; pass ``next_cursor`` to get the next."""

    jobs: list[Job]
    next_cursor: str | None
    has_more: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPage:
        return cls(
            jobs=[Job.from_dict(j) for j in data.get("jobs") or []],
            next_cursor=data.get("nextCursor"),
            has_more=bool(data.get("hasMore")),
            raw=data,
        )


@dataclass(frozen=True)
class Model:
    """A model of ``GET /v2/models``; ``params_schema`` only from ``models.get``."""

    id: str
    label: str
    description: str
    params_key: str
    cost_min: int | None
    cost_max: int | None
    available: bool
    params_schema: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        return cls(
            id=str(data["id"]),
            label=str(data.get("label", data["id"])),
            description=str(data.get("description") or ""),
            params_key=str(data.get("paramsKey") or ""),
            cost_min=data.get("costMin"),
            cost_max=data.get("costMax"),
            available=bool(data.get("available", True)),
            params_schema=data.get("paramsSchema"),
            raw=data,
        )


@dataclass(frozen=True)
class Upload:
    """A stored input image; pass ``url`` as an input image. It expires at ``expires_at``."""

    id: str
    url: str
    content_type: str | None
    byte_size: int | None
    expires_at: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Upload:
        return cls(
            id=str(data["id"]),
            url=str(data["url"]),
            content_type=data.get("contentType"),
            byte_size=data.get("byteSize"),
            expires_at=data.get("expiresAt"),
            raw=data,
        )


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    credits: int


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    name: str | None
    prefix: str | None
    kind: str | None


@dataclass(frozen=True)
class Me:
    """``GET /v2/me``: the account (``team``) behind the key, its balance, and the key."""

    team: Account
    api_key: ApiKeyInfo
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def credits(self) -> int:
        return self.team.credits

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Me:
        team = data.get("team") or {}
        key = data.get("apiKey") or {}
        return cls(
            team=Account(
                id=str(team.get("id", "")),
                name=str(team.get("name", "")),
                credits=int(team.get("credits") or 0),
            ),
            api_key=ApiKeyInfo(
                id=str(key.get("id", "")),
                name=key.get("name"),
                prefix=key.get("prefix"),
                kind=key.get("kind"),
            ),
            raw=data,
        )


@dataclass(frozen=True)
class Download:
    """The bytes behind a result URL, with the type the server gave them."""

    content: bytes
    content_type: str | None

    @property
    def extension(self) -> str:
        """A file extension for ``content_type`` (``.png``, ``.jpg``, ``.webp``), else ``.bin``."""
        kind = (self.content_type or "").split(";")[0].strip().lower()
        return (mimetypes.guess_extension(kind) if kind else None) or ".bin"
