"""The imagegate Python client: call the API, and verify the webhooks it sends.

Nothing here imports the server side of imagegate, so the client works on its own.
"""

from __future__ import annotations

from imagegate.client._client import TERMINAL, ApiError, Client
from imagegate.client.webhooks import (
    WebhookVerificationError,
    verify_apiframe_signature,
    verify_standard_webhook,
)

__all__ = [
    "TERMINAL",
    "ApiError",
    "Client",
    "WebhookVerificationError",
    "verify_apiframe_signature",
    "verify_standard_webhook",
]
