"""Settings every process shares (broker, naming, retries, logs, idempotency), read once from the environment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.retry_after import DEFAULT_MAX_PAUSE
from shared.transport import check_url

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"


def split_csv(value: object) -> object:
    """Environment lists are comma-separated (``1,5,30``), not JSON."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def explain(exc: ValidationError) -> str:
    """One line per problem, ``SETTING: what is wrong``; never the value, which may be a secret."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        name = (loc[0].upper() + "".join(f"[{part}]" for part in loc[1:])) if loc else "settings"
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)


class CommonSettings(BaseSettings):
    """The base of every process's settings class. Built once in ``__main__`` and passed down.

    ``hide_input_in_errors``: pydantic would otherwise put the input into every error's text, and for a
    model-level check that input is the whole environment it read, API key and passwords included.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True, hide_input_in_errors=True)

    amqp_url: SecretStr = Field(
        default=SecretStr(DEFAULT_AMQP_URL),
        description="broker URL, or the URLs of a cluster's nodes comma-separated; may hold a password, so secret",
    )
    topology_prefix: str = Field(
        default="", description="prepended to every exchange and queue name (test isolation, staging)"
    )
    retry_delays: Annotated[list[float], NoDecode] = Field(
        default=[1.0, 5.0, 30.0, 120.0, 600.0],
        description="seconds between attempts of a transient failure; one delay queue per step",
    )
    delivery_limit: int = Field(
        default=10,
        ge=1,
        description="quorum delivery limit: redeliveries before a crash-looping message is dead-lettered",
    )
    heartbeat: int = Field(default=30, ge=5, description="AMQP heartbeat in seconds")
    blocked_connection_timeout: float = Field(default=30.0, gt=0)
    idempotency_url: SecretStr = Field(
        default=SecretStr("sqlite:///var/idempotency.sqlite3"),
        description="where processed invoices are remembered: sqlite:///path (one host) or redis://host:6379/0",
    )
    idempotency_ttl_days: float = Field(default=30.0, gt=0, description="how long a done invoice is remembered")
    claim_lease_seconds: float = Field(
        default=15.0,
        ge=3,
        description="a claim's lease, renewed every third of it while its worker lives: a dead worker's invoices "
        "are taken over within this",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    allow_insecure_transport: bool = Field(
        default=False,
        description="allow plain http:// and SMTP logins without TLS to hosts other than this machine",
    )
    max_pause_seconds: float = Field(
        default=DEFAULT_MAX_PAUSE,
        gt=0,
        le=86400,
        description="the longest pause a Retry-After or X-RateLimit-Reset from DocSpace or the pipeline may impose",
    )

    @field_validator("amqp_url")
    @classmethod
    def _amqp_nodes(cls, value: SecretStr) -> SecretStr:
        urls = [url.strip() for url in value.get_secret_value().split(",") if url.strip()]
        if not urls or not all(url.startswith(("amqp://", "amqps://")) for url in urls):
            # Never echo the value: it may hold a password.
            raise ValueError("AMQP_URL must be one or more amqp:// or amqps:// URLs, comma-separated")
        return value

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("retry_delays")
    @classmethod
    def _delays_positive(cls, value: list[float]) -> list[float]:
        if not value or any(delay <= 0 for delay in value):
            raise ValueError("RETRY_DELAYS must be a non-empty list of positive seconds, e.g. 1,5,30,120,600")
        return value


class DocSpaceSettings(CommonSettings):
    """For the stages that call DocSpace's REST API (classifier, mover)."""

    docspace_api_host: str = Field(min_length=1, description="portal base URL, e.g. https://yourportal.onlyoffice.com")
    docspace_api_key: SecretStr = Field(description="API key (sk-…) or personal access token, sent as Bearer")
    docspace_timeout: float = Field(default=15.0, gt=0, description="read timeout of one DocSpace call, seconds")
    # DocSpace limits each user (API key) to 1,500 requests/min and 15 concurrent writes (contract §3.3). These are
    # this process's share: when several processes or replicas use one key, their values must add up to the limit.
    docspace_rate_limit_per_minute: int = Field(
        default=1400, ge=1, description="DocSpace requests per minute this process may send (its share of 1,500)"
    )
    docspace_max_concurrent_writes: int = Field(
        default=12, ge=1, description="non-GET DocSpace requests in flight at once (its share of 15)"
    )
    # With Redis (IDEMPOTENCY_URL=redis://...) every process and replica on one key shares one limit instead.
    docspace_shared_rate_limit_per_minute: int = Field(
        default=1450, ge=1, description="with Redis: DocSpace requests per minute for all processes on the key together"
    )
    docspace_shared_max_concurrent_writes: int = Field(
        default=14, ge=1, description="with Redis: non-GET DocSpace requests in flight on the key, all processes"
    )
    docspace_daily_write_quota: int = Field(
        default=10_000, ge=1, description="DocSpace's POST/PUT requests allowed per key and day (its 429 names it)"
    )
    docspace_write_quota_period: float = Field(
        default=86_400.0, ge=1, description="seconds in DocSpace's write-quota period: a day (tests shorten it)"
    )
    # A folder moved from one client's room to another's keeps its id: until a remembered folder -> room answer
    # expires, its uploads would still go to the old client. The mover re-reads an answer older than this.
    room_cache_ttl_seconds: float = Field(
        default=300.0, gt=0, description="seconds a folder's room (from its DocSpace path) is trusted before a re-read"
    )

    @field_validator("docspace_api_host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("DOCSPACE_API_HOST must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secure_transport(self) -> DocSpaceSettings:
        self.transport_notes()  # raises InsecureTransport (a ValueError) for plain http to another host
        return self

    def transport_notes(self) -> list[str]:
        """What plain-text transport these settings allow, for a log line at start and for ``doctor``."""
        note = check_url("DOCSPACE_API_HOST", self.docspace_api_host, allow_insecure=self.allow_insecure_transport)
        return [note] if note else []


class StageSettings(CommonSettings):
    """What every consumer process has: how many messages it works on at once, where it reports health."""

    concurrency: int = Field(default=4, ge=1, le=256, description="worker threads (and prefetch) per stage")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="/metrics and /healthz port; 0 = off")
