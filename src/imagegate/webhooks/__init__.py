"""Outgoing webhooks: ``signing`` (both signature schemes) and ``delivery`` (the sender).

Only the signing helpers are re-exported here; importing the package must stay cheap and must
not pull in the database layer that ``delivery`` needs.
"""

from __future__ import annotations

from imagegate.webhooks.signing import (
    apiframe_signature,
    new_secret,
    standard_signature,
    webhook_headers,
)

__all__ = ["apiframe_signature", "new_secret", "standard_signature", "webhook_headers"]
