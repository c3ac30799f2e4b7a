"""Every error the SDK raises, in one tree.

    ImagegateError
    ├── APIConnectionError                the gateway cannot be reached (refused, DNS, timeout)
    ├── APIStatusError  (alias ApiError)  an answer of 4xx/5xx: ``status``, ``body``, ``code``
    │   ├── BadRequestError          400  ``details`` maps a JSON path to its rules; also 413
    │   ├── AuthenticationError      401  missing or invalid key; 403 inactive key
    │   ├── InsufficientCreditsError 402  ``credits_required``, ``credits_available``
    │   ├── NotFoundError            404
    │   ├── ConflictError            409  Idempotency-Key reused, cancel of a finished job
    │   ├── RateLimitError           429  ``retry_after`` seconds
    │   └── ServiceUnavailableError  503 (and any other 5xx)  ``retry_after`` when sent
    └── JobTimeoutError                   ``jobs.wait`` ran out of time; ``job`` is the last seen

``ApiError`` is the name earlier releases used for ``APIStatusError`` and stays importable.
Catch ``ImagegateError`` to handle everything the SDK raises on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate.client._types import Job

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ImagegateError",
    "InsufficientCreditsError",
    "JobTimeoutError",
    "NotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "error_for_status",
]


class ImagegateError(Exception):
    """The base of every error the SDK raises on purpose."""


class APIConnectionError(ImagegateError):
    """No answer from the gateway: connection refused, name not resolved, or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the gateway at {url}: {reason}")


class APIStatusError(ImagegateError):
    """The gateway answered with an error status.

    ``body`` is the decoded JSON body (or the text when it was not JSON); ``code`` is the
    server's stable machine code (``validation_failed``, ``api_key_invalid``, …) when present.
    """

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        fields = body if isinstance(body, dict) else {}
        self.message: str = str(fields.get("error") or body or f"HTTP {status}")
        self.code: str | None = fields.get("code")
        super().__init__(f"HTTP {status}: {self.message}")

    @property
    def status_code(self) -> int:
        """The same as ``status``, under httpx's name."""
        return self.status


ApiError = APIStatusError


class BadRequestError(APIStatusError):
    """400 (or 413): the request was refused as it stands; ``details`` names each field."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body, headers)
        raw = body.get("details") if isinstance(body, dict) else None
        self.details: dict[str, list[str]] = (
            {str(k): [str(rule) for rule in v] for k, v in raw.items()}
            if isinstance(raw, dict)
            else {}
        )
        if self.details:
            rules = "; ".join(f"{path}: {', '.join(v)}" for path, v in self.details.items())
            self.args = (f"{self.args[0]} ({rules})",)


class AuthenticationError(APIStatusError):
    """401 (no key, or an unknown one) or 403 (a revoked or deactivated key)."""


class InsufficientCreditsError(APIStatusError):
    """402: the account's balance does not cover the job's price."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body, headers)
        fields = body if isinstance(body, dict) else {}
        self.credits_required: int | None = fields.get("creditsRequired")
        self.credits_available: int | None = fields.get("creditsAvailable")
        if self.credits_required is not None:
            self.args = (
                f"{self.args[0]} (required {self.credits_required}, "
                f"available {self.credits_available})",
            )


class NotFoundError(APIStatusError):
    """404: no such job, model or file for this key."""


class ConflictError(APIStatusError):
    """409: an Idempotency-Key reused with another body, or a finished job cancelled."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from this gateway; the back-off applies instead


class RateLimitError(APIStatusError):
    """429: too many queued jobs; ``retry_after`` is the server's advice in seconds."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body, headers)
        self.retry_after: float | None = _retry_after(self.headers)


class ServiceUnavailableError(APIStatusError):
    """503 or another 5xx: the gateway or its database is down for now."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body, headers)
        self.retry_after: float | None = _retry_after(self.headers)


class JobTimeoutError(ImagegateError, TimeoutError):
    """``jobs.wait`` gave up before the job finished; ``job`` is its last known state."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        super().__init__(f"job {job.id} still {job.status} after {timeout:g} s")


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    429: RateLimitError,
}


def error_for_status(status: int, body: Any, headers: Mapping[str, str]) -> APIStatusError:
    """The exception for an error answer: the class above for its status, else the base."""
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = ServiceUnavailableError if status >= 500 else APIStatusError
    return kind(status, body, headers)
