"""DocSpace's HTTP transport: the API key, the client-side rate limit, 429 handling and typed errors, per call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
import structlog
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from shared.config.redact import safe_url, scrub
from shared.core.ids import InvalidId, parse_id
from shared.docspace.errors import (
    DocSpaceAccessDenied,
    DocSpaceNotFound,
    DocSpaceRejected,
    DocSpaceUnavailable,
    InvalidDocSpaceId,
)
from shared.limits.rate_limit import Limiter
from shared.limits.retry_after import DEFAULT_MAX_PAUSE, retry_after_from

log = structlog.get_logger(__name__)


def path_id(value: str | int) -> str:
    """An id about to become part of a URL or a request body: a DocSpace id, or ``InvalidDocSpaceId``.

    Validated rather than only percent-encoded: ``..`` survives ``quote`` and would walk up the API's path.
    """
    try:
        return parse_id(value)
    except InvalidId as exc:
        raise InvalidDocSpaceId(f"not a DocSpace id, so no request was made: {exc}") from None


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` per request, so the key never sits in a repr or the session headers."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(**********)"


@dataclass(frozen=True)
class HttpOptions:
    """How a process talks HTTP to the portal: timeouts, its connection pool, its name, how it takes a 429."""

    timeout: tuple[float, float] = (3.05, 15.0)  # (connect, read) seconds
    pool_size: int = 16
    user_agent: str | None = None  # names the process in the portal's logs (and to the simulator)
    max_retry_after: float = 10.0  # a 429 asking for at most this long is retried here, not by the ladder
    rate_limit_retries: int = 2
    max_pause: float = DEFAULT_MAX_PAUSE  # the longest wait a Retry-After / X-RateLimit-Reset may ask for


class DocSpaceTransport:
    """One HTTP session to one portal, shared by a process's worker threads; every DocSpace call goes through it.

    Failures are typed (``shared.docspace.errors``): permanent ones dead-letter, transient ones carry
    ``retry_after`` for the retry ladder. A 429 whose ``Retry-After`` is at most ``max_retry_after`` seconds is
    retried here, at most ``rate_limit_retries`` times; anything longer is left to the ladder so a worker never
    sleeps for long.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        http: HttpOptions | None = None,
        *,
        limiter: Limiter | None = None,
    ) -> None:
        http = http or HttpOptions()
        self.base_url = base_url.rstrip("/")
        self.shown_url = safe_url(self.base_url)  # for logs and messages: no userinfo or path
        self._api = f"{self.base_url}/api/2.0/"
        self._timeout = http.timeout
        self._max_retry_after = http.max_retry_after
        self._rate_limit_retries = http.rate_limit_retries
        self._max_pause = http.max_pause
        self._limiter = limiter  # shared by the process's threads; None = no client-side limit
        self._session = requests.Session()
        self._session.auth = _BearerAuth(api_key if isinstance(api_key, SecretStr) else SecretStr(api_key))
        self._session.headers.update({"Accept": "application/json"})
        if http.user_agent:
            # Names the process in the portal's logs (and lets the simulator count each process's calls).
            self._session.headers["User-Agent"] = http.user_agent
        adapter = HTTPAdapter(pool_connections=http.pool_size, pool_maxsize=http.pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"DocSpaceTransport(base_url={self.shown_url!r})"

    def close(self) -> None:
        self._session.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One API call (``path`` below ``/api/2.0/``), returning the envelope's ``response``; failures typed."""
        url = self._api + path
        attempt = 0
        while True:
            try:
                if self._limiter is None:
                    resp = self._session.request(method, url, params=params, json=json, timeout=self._timeout)
                else:
                    with self._limiter.slot(method):
                        resp = self._session.request(method, url, params=params, json=json, timeout=self._timeout)
            except requests.Timeout as exc:
                raise DocSpaceUnavailable(f"DocSpace {method} {path} timed out: {self._scrub(exc)}") from None
            except requests.RequestException as exc:
                raise DocSpaceUnavailable(f"DocSpace {method} {path} failed: {self._scrub(exc)}") from None
            status = resp.status_code
            if status == 429 and self._limiter is not None:
                spent = self._limiter.write_quota_spent(method, resp.headers)
                if spent is not None:
                    raise spent  # the day's writes are used up: this invoice waits for the reset; reads go on
            if status == 429:
                wait = retry_after_from(resp.headers, cap=self._max_pause)
                if self._limiter is not None:
                    # Every thread of the process holds off together: one 429 must not become a storm.
                    self._limiter.pause(wait if wait is not None else 1.0)
                if wait is not None and wait <= self._max_retry_after and attempt < self._rate_limit_retries:
                    attempt += 1
                    log.info("docspace_rate_limited", method=method, path=path, sleep=wait, attempt=attempt)
                    time.sleep(wait)
                    continue
            if status >= 400:
                raise self._error(method, path, resp)
            if not resp.content:
                return None
            try:
                body = resp.json()
            except (ValueError, RecursionError) as exc:
                # RecursionError: a deeply nested answer exhausts the JSON parser's stack. Either way the answer
                # cannot be read; typed, so the stage retries it rather than crash on it.
                raise DocSpaceUnavailable(
                    f"DocSpace {method} {path} answered {status} with a body that is not readable JSON"
                    f" ({type(exc).__name__})"
                ) from None
            return body.get("response") if isinstance(body, dict) else body

    def _scrub(self, exc: Exception) -> str:
        # requests names the URL it failed on, query (a file title in filterValue) and all.
        return scrub(f"{type(exc).__name__}: {exc}", self.base_url)

    def _error(self, method: str, path: str, resp: requests.Response) -> Exception:
        status = resp.status_code
        message = ""
        try:
            body = resp.json()
        except (ValueError, RecursionError):  # see request(): an unreadable error body is no message
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and err.get("message"):
                message = str(err["message"])
            elif isinstance(body.get("response"), dict):  # ProblemDetails on model-validation failures
                problem = body["response"]
                message = str(problem.get("title") or problem.get("detail") or "")
                if problem.get("errors"):
                    message = f"{message} {problem['errors']}".strip()
        if not message:
            message = resp.reason or ""
        text = f"DocSpace {method} {path} -> {status}: {message}".rstrip(": ")
        if status == 404:
            return DocSpaceNotFound(text)
        if status in (401, 403):
            return DocSpaceAccessDenied(text)
        if status == 429:
            retry_after = retry_after_from(resp.headers, cap=self._max_pause)
            return DocSpaceUnavailable(text, reason="docspace_rate_limited", retry_after=retry_after)
        if status == 408 or status >= 500:
            return DocSpaceUnavailable(text, retry_after=retry_after_from(resp.headers, cap=self._max_pause))
        return DocSpaceRejected(text)
