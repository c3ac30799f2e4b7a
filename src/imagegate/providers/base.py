"""What every vendor adapter shares: a base class with defaulted hooks, options, credentials.

A concrete adapter holds only what differs from its vendor's neighbours. ``Adapter`` owns the
vendor's ``httpx2`` client and defaults the hooks most vendors leave alone: ``cancel`` is a no-op
(``supports_cancel`` stays false) and ``aclose`` closes the client. ``SyncAdapter`` is the base for
vendors that answer ``submit`` with the images at once: its ``poll`` refuses, because asking a
synchronous vendor again would mean submitting (and paying) twice.

Each vendor module declares its ``options`` as a ``ProviderOptions`` subclass named ``Options``
(``extra="forbid"``). ``read_options`` checks ``ProviderSettings.options`` against it, so a misspelt
option is an error naming the provider, the option and the allowed names, raised when the runtime
is built rather than ignored at the first job. ``api_key`` and ``open_client`` are the one way an
adapter reads its credential, host and timeout from ``ProviderSettings``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import httpx2
from pydantic import BaseModel, ConfigDict, ValidationError

from imagegate.errors import UpstreamRejected
from imagegate.providers.http import create_client
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings

__all__ = [
    "Adapter",
    "ProviderOptions",
    "SyncAdapter",
    "api_key",
    "open_client",
    "read_options",
]

OptionsT = TypeVar("OptionsT", bound="ProviderOptions")


class ProviderOptions(BaseModel):
    """A vendor's ``options``: every key it reads, typed, and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def read_options(provider: str, model: type[OptionsT], options: Mapping[str, Any]) -> OptionsT:
    """``options`` checked against ``model``; ``ValueError`` names each offending option.

    The message lists the allowed names when an option is unknown, so a typo is found at once.
    """
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        allowed = ", ".join(sorted(model.model_fields)) or "none"
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "options"
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option {name!r} (allowed: {allowed})")
            else:
                problems.append(f"option {name!r}: {error['msg']}")
        raise ValueError(f"providers.{provider}.options: " + "; ".join(problems)) from None


def api_key(config: ProviderSettings) -> str:
    """The configured credential, or ``""`` when none is set."""
    return config.api_key.get_secret_value() if config.api_key is not None else ""


def open_client(
    provider: str,
    config: ProviderSettings,
    context: ProviderContext,
    headers: Mapping[str, str],
    *,
    default_base_url: str | None,
) -> httpx2.AsyncClient:
    """The vendor's client: ``base_url`` when set (else the vendor's host), its timeout, and the
    transport tests inject. A vendor without a default host needs ``base_url``."""
    base_url = config.base_url or default_base_url
    if not base_url:
        raise ValueError(f"{provider}: set base_url (this provider has no default host)")
    return create_client(
        base_url,
        headers,
        timeout=config.timeout,
        connections=config.max_concurrency,
        transport=context.transport,
    )


class Adapter(ABC):
    """Base for adapters that talk to their vendor through one ``httpx2`` client."""

    name: ClassVar[str]
    supports_cancel: ClassVar[bool] = False

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    @abstractmethod
    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        """Start the job upstream (see ``ProviderAdapter.submit``)."""

    @abstractmethod
    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        """Ask the vendor how the task is doing (see ``ProviderAdapter.poll``)."""

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        """The vendor has no cancel: a started task runs to its end upstream."""
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


class SyncAdapter(Adapter):
    """Base for vendors whose ``submit`` answers ``Finished``: there is never a task to poll."""

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        """Never called: ``submit`` always finishes. Resubmitting could bill twice, so refuse."""
        raise UpstreamRejected(
            f"{self.name} jobs are synchronous and have no task to poll", provider=self.name
        )
