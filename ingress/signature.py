"""Verifies DocSpace's ``x-docspace-signature-256`` header: HMAC-SHA256 over the exact body bytes.

Also the operator's resend stamp: ``invoice-pipeline send-test-event --file`` sends a saved delivery again long
after its ``event.createOn``, which the ingress refuses as stale unless the resend is signed with the secret and
recent (``x-pipeline-resent-at``, ``x-pipeline-resend-signature``). A captured delivery replayed as it was
carries no fresh stamp, and no one without the secret can make one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="
RESENT_AT_HEADER = "x-pipeline-resent-at"
RESEND_SIGNATURE_HEADER = "x-pipeline-resend-signature"


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


def resend_signed_bytes(body: bytes, resent_at: str) -> bytes:
    """What a resend signature covers: the resend's time and the body. Never a JSON body, so never a delivery's."""
    return b"invoice-pipeline-resend:" + resent_at.encode("ascii", "replace") + b":" + body


def resend_headers(body: bytes, secret: str, now: float) -> dict[str, str]:
    """The stamp an operator's resend of ``body`` carries, made at unix time ``now``."""
    resent_at = str(int(now))
    return {RESENT_AT_HEADER: resent_at, RESEND_SIGNATURE_HEADER: sign(resend_signed_bytes(body, resent_at), secret)}
