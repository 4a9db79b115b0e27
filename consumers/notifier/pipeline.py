"""The processing-pipeline port of the notifier, its signed HTTP adapter, and Standard Webhooks signing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from types import TracebackType
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from shared.config.redact import safe_url, scrub
from shared.core.errors import PermanentError, TransientError
from shared.core.events import InvoiceReceived
from shared.limits.retry_after import DEFAULT_MAX_PAUSE, parse_retry_after

USER_AGENT = "docspace-invoice-pipeline-notifier/0.1 (+https://www.standardwebhooks.com/)"
_WHSEC_PREFIX = "whsec_"
_BODY_EXCERPT = 300
# 408 and 429 are the two 4xx that mean "not now" rather than "not this".
_RETRYABLE_4XX = frozenset({408, 429})


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``secret``, per Standard Webhooks.

    A ``whsec_``-prefixed secret is the spec's format: the rest is base64 of the key bytes. Any other string
    is used as its UTF-8 bytes, so a receiver given a plain shared secret verifies with that same string.
    """
    if not secret:
        raise ValueError("the pipeline signing secret is empty")
    if secret.startswith(_WHSEC_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(_WHSEC_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
        if not key:
            raise ValueError("the pipeline signing secret is empty")
        return key
    return secret.encode("utf-8")


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class HttpPipelineClient:
    """POSTs each received invoice to the pipeline as a signed Standard Webhook.

    The invoice id is the ``webhook-id`` and the ``Idempotency-Key``: a retried or replayed trigger carries
    the same id, so the pipeline can drop the duplicate. The URL may hold a token (userinfo, query, path): every
    text this client writes (errors, so dead-letter headers and logs; its repr) shows only scheme and host.
    """

    def __init__(
        self,
        url: str,
        secret: SecretStr | str,
        *,
        timeout: tuple[float, float] = (3.05, 15.0),
        session: requests.Session | None = None,
        max_pause: float = DEFAULT_MAX_PAUSE,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"the pipeline URL must be an absolute http(s) URL, got {safe_url(url) or 'nothing'}")
        self._url = url
        self._shown = safe_url(url)
        self._max_pause = max_pause
        raw_secret = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        signing_key(raw_secret)  # a bad secret fails at start-up, not on the first invoice
        self._secret = SecretStr(raw_secret)
        self._timeout = timeout
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"HttpPipelineClient(url={self._shown!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> HttpPipelineClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def trigger(self, invoice: InvoiceReceived) -> int:
        body = json.dumps(invoice.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        msg_id = invoice.invoice_id
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_standard_webhook(self._secret.get_secret_value(), msg_id, timestamp, body),
            "Idempotency-Key": msg_id,
        }
        try:
            response = self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            # Timeouts, refused connections, resets, TLS failures: the pipeline may well be back soon, and the
            # idempotency key makes a repeat harmless even if this request did get through.
            # requests' texts quote the URL it failed on, query and all.
            raise TransientError(
                f"pipeline {self._shown} unreachable: {type(exc).__name__}: {scrub(str(exc), self._url)}",
                reason="pipeline_unavailable",
            ) from None
        with response:
            self._check(response)
            return int(response.status_code)

    def _check(self, response: requests.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"pipeline {self._shown} answered {status} {response.reason or ''}".rstrip()
        if status >= 500 or status in _RETRYABLE_4XX:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), cap=self._max_pause)
            raise TransientError(
                f"{detail}: {_excerpt(response)}", reason="pipeline_unavailable", retry_after=retry_after
            )
        if 300 <= status < 400:
            # Not followed: a redirected POST would either lose its body or leak the signed payload elsewhere.
            location = safe_url(response.headers.get("Location", ""), path=False) or "?"
            raise PermanentError(f"{detail} redirecting to {location}; fix PIPELINE_URL", reason="pipeline_rejected")
        raise PermanentError(f"{detail}: {_excerpt(response)}", reason="pipeline_rejected")


def _excerpt(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:_BODY_EXCERPT] + ("…" if len(text) > _BODY_EXCERPT else "") if text else "(empty body)"
