"""Every error imagegate raises on purpose, in one tree.

    ImagegateError
    ├── ValidationFailed          400  bad input; ``details`` maps a JSON path to messages
    ├── AuthenticationFailed
    │   ├── ApiKeyMissing         401
    │   ├── ApiKeyInvalid         401
    │   ├── ApiKeyInactive        403
    │   └── Forbidden             403  a valid key asking for what it may not do
    │       └── ModelNotAllowed   403  the key is restricted to other models
    ├── NotFound                  404
    ├── Conflict                  409
    │   ├── IdempotencyConflict   409  same Idempotency-Key, different body
    │   ├── JobAlreadyFinished    409  cancel on a finished job
    │   └── ActionUnavailable     409  a follow-up action the parent job cannot take
    ├── InsufficientCredits       402
    ├── PayloadTooLarge           413
    ├── RateLimited               429  carries ``retry_after`` seconds
    │   ├── ConcurrentJobsLimit   429  the account's cap on QUEUED + PROCESSING jobs
    │   └── DailySpendLimit       429  the account's cap on credits spent in one UTC day
    ├── ServiceUnavailable        503  database or queue down; carries ``retry_after``
    └── UpstreamError                  a provider failed: the job fails or retries (never HTTP)
        ├── UpstreamRetryable          transient (408/409/429/5xx, connection), retry_after
        ├── UpstreamRejected           the provider refused the input (4xx); message passed through
        ├── UpstreamModerated          content policy; never retried, always refunded
        ├── UpstreamMisconfigured      our credentials or setup are wrong (401/403)
        └── UpstreamTaskLost           the provider no longer knows the task it gave us

``imagegate.api.errors`` is the one place that turns these into HTTP responses. Each class's
docstring is its default message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "ActionUnavailable",
    "ApiKeyInactive",
    "ApiKeyInvalid",
    "ApiKeyMissing",
    "AuthenticationFailed",
    "ConcurrentJobsLimit",
    "Conflict",
    "DailySpendLimit",
    "Forbidden",
    "IdempotencyConflict",
    "ImagegateError",
    "InsufficientCredits",
    "JobAlreadyFinished",
    "ModelNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "UpstreamError",
    "UpstreamMisconfigured",
    "UpstreamModerated",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamRetryable",
    "UpstreamTaskLost",
    "ValidationFailed",
]


class ImagegateError(Exception):
    """Something went wrong."""

    code: str = "error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        super().__init__(self.message)


class ValidationFailed(ImagegateError):
    """Validation failed"""

    code = "validation_failed"

    def __init__(
        self,
        details: Mapping[str, Sequence[str]] | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.details: dict[str, list[str]] = {k: list(v) for k, v in (details or {}).items()}

    @classmethod
    def field(cls, path: str, rule: str) -> ValidationFailed:
        """One offending field: ``ValidationFailed.field("prompt", "must be at most 2000 …")``."""
        return cls({path: [rule]})


class AuthenticationFailed(ImagegateError):
    """Authentication failed"""

    code = "unauthorized"


class ApiKeyMissing(AuthenticationFailed):
    """API key is required"""

    code = "api_key_required"


class ApiKeyInvalid(AuthenticationFailed):
    """Invalid API key"""

    code = "api_key_invalid"


class ApiKeyInactive(AuthenticationFailed):
    """API key is inactive"""

    code = "api_key_inactive"


class Forbidden(AuthenticationFailed):
    """This API key may not do that"""

    code = "forbidden"


class ModelNotAllowed(Forbidden):
    """This API key may not use this model"""

    code = "model_not_allowed"

    def __init__(self, model: str, allowed: tuple[str, ...]) -> None:
        names = ", ".join(allowed) if allowed else "none"
        super().__init__(f"This API key may not use model {model!r} (allowed: {names})")
        self.model = model
        self.allowed = allowed


class NotFound(ImagegateError):
    """Not found"""

    code = "not_found"


class Conflict(ImagegateError):
    """Conflict"""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """Idempotency-Key was already used with a different request body"""

    code = "idempotency_key_reused"


class JobAlreadyFinished(Conflict):
    """Job has already finished"""

    code = "job_finished"


class ActionUnavailable(Conflict):
    """This action is not available for the parent job"""

    code = "action_unavailable"


class InsufficientCredits(ImagegateError):
    """Insufficient credits"""

    code = "insufficient_credits"

    def __init__(self, required: int, available: int) -> None:
        super().__init__()
        self.required = required
        self.available = available


class PayloadTooLarge(ImagegateError):
    """Request body is too large"""

    code = "payload_too_large"


class RateLimited(ImagegateError):
    """Too many requests"""

    code = "rate_limited"

    def __init__(
        self,
        message: str | None = None,
        retry_after: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})
        """Extra response headers, such as a key's ``RateLimit-*`` fields."""


class ConcurrentJobsLimit(RateLimited):
    """Too many jobs in progress"""

    code = "concurrent_jobs_limit"


class DailySpendLimit(RateLimited):
    """Daily spending limit reached"""

    code = "daily_spend_limit"


class ServiceUnavailable(ImagegateError):
    """Service unavailable"""

    code = "service_unavailable"

    def __init__(self, message: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(ImagegateError):
    """Provider returned an error"""

    code = "upstream_error"

    def __init__(self, message: str | None = None, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class UpstreamRetryable(UpstreamError):
    """Provider is temporarily unavailable"""

    code = "upstream_unavailable"

    def __init__(
        self,
        message: str | None = None,
        *,
        provider: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class UpstreamRateLimited(UpstreamRetryable):
    """Provider is rate limiting us"""

    code = "upstream_rate_limited"


class UpstreamRejected(UpstreamError):
    """Provider rejected the request"""

    code = "upstream_rejected"


class UpstreamModerated(UpstreamError):
    """Provider returned an error: content policy violation"""

    code = "content_moderated"


class UpstreamMisconfigured(UpstreamError):
    """Provider credentials or configuration are invalid"""

    code = "upstream_misconfigured"


class UpstreamTaskLost(UpstreamError):
    """Provider no longer knows the task"""

    code = "upstream_task_lost"
