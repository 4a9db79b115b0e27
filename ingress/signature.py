"""Verifies DocSpace's ``x-docspace-signature-256`` header: HMAC-SHA256 over the exact body bytes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="


class SignatureVerifier:
    """Accepts a delivery signed with any of the configured secrets (several during a rotation).

    DocSpace writes the hex digest in upper case (.NET ``Convert.ToHexString``); we compare case-insensitively
    and in constant time, over the raw bytes as received, never over re-serialised JSON.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keys = [secret.encode("utf-8") for secret in secrets if secret]
        if not self._keys:
            raise ValueError("at least one webhook secret is required")

    def verify(self, body: bytes, header: str | None) -> bool:
        if not header or header[: len(PREFIX)].lower() != PREFIX:
            return False
        received = header[len(PREFIX) :].strip().lower().encode("ascii", "replace")
        matched = False
        for key in self._keys:
            expected = hmac.digest(key, body, "sha256").hex().encode("ascii")  # one-shot: no HMAC object per key
            # No early exit: every key is tried, so timing does not reveal which secret matched.
            matched |= hmac.compare_digest(received, expected)
        return matched


def sign(body: bytes, secret: str) -> str:
    """The header value DocSpace would send for ``body`` (upper-case hex), for tests and send-test-event."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().upper()
