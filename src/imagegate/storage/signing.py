"""HMAC-signed, expiring gateway URLs: ``{base}/files/{key}?expires=<unix s>&signature=<hex>``.

The signature covers the key and the expiry, so neither can be changed; every gateway node that
shares the signing secret can check a URL another node handed out. During a rotation the
previous secret still verifies (never signs), so URLs handed out before it keep working until
they expire.
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import quote

from imagegate.types import Clock

__all__ = ["UrlSigner", "parse_expires"]

_EXPIRES = re.compile(r"[0-9]{1,12}")


class UrlSigner:
    def __init__(
        self, secret: bytes, base_url: str, clock: Clock, *, previous: bytes | None = None
    ) -> None:
        self._secret = secret
        self._verifying = (secret, previous) if previous else (secret,)
        self._base = base_url.rstrip("/")
        self._clock = clock

    @property
    def files_prefix(self) -> str:
        """Every URL this signer makes starts with this."""
        return f"{self._base}/files/"

    def _mac(self, key: str, expires: int, secret: bytes | None = None) -> str:
        # ``hmac.digest`` is OpenSSL's one-shot HMAC: a fifth of ``hmac.new(...).hexdigest()``.
        message = f"{key}\n{expires}".encode()
        return hmac.digest(secret or self._secret, message, "sha256").hex()

    def sign(self, key: str, expires_in: int) -> str:
        expires = self._clock.now_ms() // 1000 + expires_in
        # Both values are digits or hex digits: nothing in them to escape.
        query = f"expires={expires}&signature={self._mac(key, expires)}"
        return f"{self.files_prefix}{quote(key)}?{query}"

    def verify(self, key: str, expires: str | None, signature: str | None, now_s: int) -> bool:
        """True when the signature matches and the URL has not expired.

        ``expires`` must already be well formed (``parse_expires``); anything else is refused.
        """
        expiry = parse_expires(expires)
        if expiry is None or not signature or not signature.isascii():
            return False
        if not any(
            hmac.compare_digest(self._mac(key, expiry, secret), signature)
            for secret in self._verifying
        ):
            return False
        return expiry > now_s


def parse_expires(value: str | None) -> int | None:
    """An ``expires`` query value as Unix seconds; ``None`` unless 1 to 12 ASCII digits.

    ``str.isdigit`` alone accepts ``²`` and Arabic-Indic digits, and ``int`` refuses strings of
    over 4300 digits: both would escape as exceptions instead of a clear answer.
    """
    if value is None or not _EXPIRES.fullmatch(value):
        return None
    return int(value)
