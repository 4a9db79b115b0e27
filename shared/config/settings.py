"""Settings every process shares (broker, naming, retries, logs, idempotency), read once from the environment."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.config.plaintext import check_url
from shared.limits.retry_after import DEFAULT_MAX_PAUSE

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"
# The floor for every secret that signs (DOCSPACE_WEBHOOK_SECRET, PIPELINE_SECRET); DocSpace's password policy,
# which webhook secrets must also pass, is usually stricter.
MIN_SECRET_LENGTH = 16
# Descriptions of settings that several classes declare with their own defaults: one text, so the generated
# configuration reference (tools/config_reference.py) has one meaning for each variable.
RATE_LIMIT_SHARE = (
    "this process's share of DocSpace's 1,500 requests/min per user (API key); the mover makes two calls per "
    "invoice (the move, its poll), the classifier only room lookups; divide further between replicas. Not used "
    "by the reconciler, whose rate is `RECONCILE_BUDGET_SHARE` of `DOCSPACE_SHARED_RATE_LIMIT_PER_MINUTE`"
)
METRICS_PORT = (
    "port of `/metrics`, `/healthz`, `/readyz`, on the `HOST` interface for the ingress (0 = off); the ingress's "
    "is internal: keep it off the reverse proxy"
)


def split_csv(value: object) -> object:
    """Environment lists are comma-separated (``1,5,30``), not JSON."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_Item = TypeVar("_Item")
# A list setting: read as written in the environment (``1,5,30``), never decoded as JSON first.
CommaSeparated = Annotated[list[_Item], NoDecode, BeforeValidator(split_csv)]


def explain(exc: ValidationError) -> str:
    """One line per problem, ``SETTING: what is wrong``; never the value, which may be a secret."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        name = (loc[0].upper() + "".join(f"[{part}]" for part in loc[1:])) if loc else "settings"
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)


def short_secret(secret: str) -> str | None:
    """Why ``secret`` is too short to sign with (``is 7 characters``), or None; never names its value."""
    if len(secret) >= MIN_SECRET_LENGTH:
        return None
    return f"is {len(secret)} character{'' if len(secret) == 1 else 's'}" if secret else "is empty"


class CommonSettings(BaseSettings):
    """The base of every process's settings class. Built once in ``__main__`` and passed down.

    ``hide_input_in_errors``: pydantic would otherwise put the input into every error's text, and for a
    model-level check that input is the whole environment it read, API key and passwords included.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True, hide_input_in_errors=True)

    amqp_url: SecretStr = Field(
        default=SecretStr(DEFAULT_AMQP_URL),
        description="the broker; for a cluster every node's URL, comma-separated (a comma inside a password is "
        "`%2C`). Each process starts at a random node and goes to the next one that answers when its node dies. "
        "It may hold a password, so it is kept as a secret",
    )
    topology_prefix: str = Field(
        default="",
        description="prepended to every exchange and queue name (staging beside production, tests; the demo uses "
        "`demo.`)",
    )
    topology_declare: Literal["full", "passive"] = Field(
        default="full",
        description="`full`: the process declares every exchange and queue when it connects (its broker user needs "
        "configure, write and read on all of them); `passive`: it only checks they exist, for least-privilege "
        "broker users, after `invoice-pipeline topology` has declared them as the administrator "
        "(docs/security.md)",
    )
    retry_delays: CommaSeparated[float] = Field(
        default=[1.0, 5.0, 30.0, 120.0, 600.0],
        description="seconds of each retry step of a transient failure, comma-separated; each step is a delay queue",
    )
    delivery_limit: int = Field(
        default=10,
        ge=1,
        description="redeliveries of one message before the broker dead-letters it (crash loops): the work queues' "
        "`x-delivery-limit`",
    )
    heartbeat: int = Field(default=30, ge=5, description="AMQP heartbeat, seconds")
    blocked_connection_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a connection may stay blocked by a broker alarm before it is dropped and re-made",
    )
    idempotency_url: SecretStr = Field(
        default=SecretStr("sqlite:///var/idempotency.sqlite3"),
        description="where processed invoices (and the reconciler's checkpoints) are remembered: "
        "`sqlite:///relative/path`, `sqlite:////absolute/path` (one host, any number of processes) or "
        "`redis://host:6379/0` (replicas on several hosts)",
    )
    idempotency_ttl_days: float = Field(default=30.0, gt=0, description="days a processed invoice is remembered")
    claim_lease_seconds: float = Field(
        default=15.0,
        ge=3,
        description="seconds of a claim's lease, renewed every third of it while its worker lives: a dead worker's "
        "invoices are taken over within this (at least 3)",
    )
    journal_enabled: bool = Field(
        default=True,
        description="publish each decision to the decision journal (what `invoice-pipeline trace` reads); `false` "
        "switches it off in this process: its decisions are neither published nor counted as dropped (the bench "
        "measures the journal's cost with it, journal on vs off)",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="`json`, `console`, or `auto` (JSON unless on a terminal)"
    )
    log_level: str = Field(default="INFO", description="the lowest level logged: `DEBUG`, `INFO`, `WARNING`, ...")
    allow_insecure_transport: bool = Field(
        default=False,
        description="allow plain `http://` DocSpace and pipeline URLs and SMTP logins without TLS to hosts other "
        "than this machine (loopback is always allowed, for development); each allowance is logged at start and "
        "shown by `doctor`",
    )
    max_pause_seconds: float = Field(
        default=DEFAULT_MAX_PAUSE,
        gt=0,
        le=86400,
        description="the longest pause, in seconds, a `Retry-After` or `X-RateLimit-Reset` from DocSpace (or the "
        "pipeline) may impose; `inf`, `nan` and negative values are ignored",
    )

    def transport_notes(self) -> list[str]:
        """What plain-text transport these settings allow, logged once at start: none unless a subclass names a URL."""
        return []

    @field_validator("amqp_url")
    @classmethod
    def _amqp_nodes(cls, value: SecretStr) -> SecretStr:
        urls = [url.strip() for url in value.get_secret_value().split(",") if url.strip()]
        if not urls or not all(url.startswith(("amqp://", "amqps://")) for url in urls):
            # Never echo the value: it may hold a password.
            raise ValueError("AMQP_URL must be one or more amqp:// or amqps:// URLs, comma-separated")
        return value

    @field_validator("retry_delays")
    @classmethod
    def _delays_positive(cls, value: list[float]) -> list[float]:
        if not value or any(delay <= 0 for delay in value):
            raise ValueError("RETRY_DELAYS must be a non-empty list of positive seconds, e.g. 1,5,30,120,600")
        return value


class DocSpaceSettings(CommonSettings):
    """For the stages that call DocSpace's REST API (classifier, mover)."""

    docspace_api_host: str = Field(
        min_length=1,
        description="portal base URL, e.g. `https://yourportal.onlyoffice.com`; unset → `make run` runs the demo. "
        "`http://` only to this machine, or with `ALLOW_INSECURE_TRANSPORT`",
    )
    docspace_api_key: SecretStr = Field(
        description="API key (`sk-…`) or personal access token, sent as `Authorization: Bearer …`"
    )
    docspace_timeout: float = Field(default=15.0, gt=0, description="read timeout of one API call, seconds")
    # DocSpace limits each user (API key) to 1,500 requests/min and 15 concurrent writes (contract §3.3). These are
    # this process's share: when several processes or replicas use one key, their values must add up to the limit.
    docspace_rate_limit_per_minute: int = Field(default=1400, ge=1, description=RATE_LIMIT_SHARE)
    docspace_max_concurrent_writes: int = Field(
        default=12, ge=1, description="this process's share of DocSpace's 15 concurrent non-GET requests"
    )
    # With Redis (IDEMPOTENCY_URL=redis://...) every process and replica on one key shares one limit instead.
    docspace_shared_rate_limit_per_minute: int = Field(
        default=1450,
        ge=1,
        description="with Redis (`IDEMPOTENCY_URL=redis://…`): requests per minute for every process and replica on "
        "the key together (the per-process shares are then unused)",
    )
    docspace_shared_max_concurrent_writes: int = Field(
        default=14, ge=1, description="with Redis: non-GET requests in flight on the key, all processes together"
    )
    docspace_daily_write_quota: int = Field(
        default=10_000,
        ge=1,
        description="DocSpace's POST/PUT requests per key and day; a 429 naming this number parks invoices until "
        "the reset",
    )
    docspace_write_quota_period: float = Field(
        default=86_400.0, ge=1, description="seconds in that quota's period (a day; tests shorten it)"
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

    concurrency: int = Field(default=4, ge=1, le=256, description="worker threads (and prefetch) per consumer stage")
    metrics_port: int = Field(default=0, ge=0, le=65535, description=METRICS_PORT)
    store_outage_max_wait: float = Field(
        default=86_400.0,
        gt=0,
        description="seconds a message waits in the parking queue for our own store (IDEMPOTENCY_URL) to come back "
        "before it is dead-lettered with reason store_outage_too_long",
    )
