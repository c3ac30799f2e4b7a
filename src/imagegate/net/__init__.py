"""Outbound HTTP the gateway makes on a user's behalf (webhooks, input images), behind a guard.

``guard`` holds the SSRF policy, the pinning httpx2 transport and ``fetch_bytes``; ``images``
turns an input-image URL (or ``data:`` URI) into verified image bytes for the provider adapters;
``retry_after`` reads a server's ``Retry-After`` advice for adapters and the webhook sender alike.
``net`` is the adapter the others share: it imports none of them (``providers``, ``storage``,
``catalog``), only the shared vocabulary.
"""

from __future__ import annotations

from imagegate.net.guard import (
    BlockedUrl,
    CheckedTarget,
    FetchFailed,
    GuardedTransport,
    OutboundError,
    OutboundPolicy,
    ParsedTarget,
    check_target,
    check_url,
    fetch_bytes,
    guarded_client,
)
from imagegate.net.images import InputImageError, make_input_fetcher, sniff_image_type
from imagegate.net.retry_after import MAX_RETRY_AFTER_SECONDS, retry_after_seconds

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "BlockedUrl",
    "CheckedTarget",
    "FetchFailed",
    "GuardedTransport",
    "InputImageError",
    "OutboundError",
    "OutboundPolicy",
    "ParsedTarget",
    "check_target",
    "check_url",
    "fetch_bytes",
    "guarded_client",
    "make_input_fetcher",
    "retry_after_seconds",
    "sniff_image_type",
]
