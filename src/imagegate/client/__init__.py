"""The imagegate Python SDK: call the API (blocking or async), and verify its webhooks.

    from imagegate.client import Client, AsyncClient

Nothing here imports the server side of imagegate, so the SDK works on its own.
"""

from __future__ import annotations

from imagegate.client._client import AsyncClient, Client
from imagegate.client._exceptions import (
    APIConnectionError,
    ApiError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ImagegateError,
    InsufficientCreditsError,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from imagegate.client._types import (
    TERMINAL,
    Download,
    Job,
    JobPage,
    Me,
    Model,
    Output,
    Upload,
)
from imagegate.client.webhooks import (
    WebhookVerificationError,
    verify_apiframe_signature,
    verify_standard_webhook,
    verify_webhook,
)

__all__ = [
    "TERMINAL",
    "APIConnectionError",
    "APIStatusError",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Download",
    "ImagegateError",
    "InsufficientCreditsError",
    "Job",
    "JobPage",
    "JobTimeoutError",
    "Me",
    "Model",
    "NotFoundError",
    "Output",
    "RateLimitError",
    "ServiceUnavailableError",
    "Upload",
    "WebhookVerificationError",
    "verify_apiframe_signature",
    "verify_standard_webhook",
    "verify_webhook",
]
