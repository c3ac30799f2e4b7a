"""Outbound HTTP the gateway makes on a user's behalf (webhooks, input images), behind a guard.

``guard`` holds the SSRF policy, the pinning httpx2 transport and ``fetch_bytes``; ``images``
turns an input-image URL (or ``data:`` URI) into verified image bytes for the provider adapters.
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

__all__ = [
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
    "sniff_image_type",
]
