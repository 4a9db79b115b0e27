"""The ingress's settings: where it listens, how it verifies, how long it waits for the broker."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from shared.config.settings import METRICS_PORT, MIN_SECRET_LENGTH, CommonSettings, short_secret

WEBHOOK_PATH = "/docspace/webhook"
# The shortest replay window that refuses no delivery DocSpace is still sending: its six attempts span ~31 s of
# pauses plus up to 100 s each when a connection hangs (~11 min), and clocks drift. Its queue can hold a delivery
# longer still, which is why the default is an hour.
MIN_REPLAY_WINDOW_SECONDS = 900


class IngressSettings(CommonSettings):
    """Where the ingress listens, how it verifies, how long it waits for the broker, and its spool."""

    host: str = Field(default="0.0.0.0", description="the interface it listens on")  # noqa: S104 - a server listens
    port: int = Field(
        default=3000, ge=1, le=65535, description="the port it listens on; the path is `/docspace/webhook`"
    )
    docspace_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the webhook secret; several, comma-separated, during a rotation (a secret cannot itself "
        "contain a comma). Each must be at least 16 characters: a shorter one stops the start with exit code 2 and "
        "a message naming its position (`secret #2 of 3 is 5 characters`), never its value. Without it the "
        "ingress refuses to start, unless started with `--insecure-skip-signature` (development only; it then "
        "logs a critical warning)",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger deliveries get 413")
    # Each worker thread holds one delivery while the broker confirms it (I/O wait, not CPU): the thread count is
    # how many confirms can be in flight at once. See docs/performance.md.
    ingress_threads: int = Field(
        default=64,
        ge=1,
        le=512,
        description="waitress worker threads; each holds one delivery while the broker confirms it, so this is how "
        "many confirms are in flight",
    )
    ingress_connection_limit: int = Field(
        default=256, ge=1, description="open connections before waitress refuses more"
    )
    ingress_backlog: int = Field(default=1024, ge=1, description="the listening socket's backlog")
    ingress_channel_timeout: int = Field(
        default=60, ge=1, description="seconds an idle keep-alive connection stays open"
    )
    confirm_timeout: float = Field(
        default=5.0, gt=0, description="seconds to wait for the broker's confirm before spooling (or 503)"
    )
    retry_after_seconds: int = Field(default=5, ge=1, description="`Retry-After` sent with a 503")
    spool_enabled: bool = Field(default=True, description="keep deliveries on disk while the broker is away")
    spool_dir: str = Field(default="var/spool", description="where the spool lives: a persistent volume in production")
    spool_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024 * 1024, description="beyond this the ingress answers 503"
    )
    metrics_port: int = Field(default=9100, ge=0, le=65535, description=METRICS_PORT)
    replay_window_seconds: float = Field(
        default=3600,
        ge=0,
        description="an event id accepted (published or spooled) within this many seconds is answered 200 and not "
        "published again (`replayed`), and a delivery whose event.createOn is older is refused with 422 (`stale`); "
        "0 = off, else at least 900",
    )
    replay_memory_size: int = Field(
        default=100_000, ge=1, description="at most this many event ids are remembered (the oldest are forgotten first)"
    )

    @field_validator("replay_window_seconds")
    @classmethod
    def _window_outlasts_docspace_retries(cls, value: float) -> float:
        if 0 < value < MIN_REPLAY_WINDOW_SECONDS:
            raise ValueError(
                f"must be 0 (off) or at least {MIN_REPLAY_WINDOW_SECONDS} seconds: a shorter window would refuse "
                "DocSpace's own retries"
            )
        return value

    def waitress_options(self) -> dict[str, Any]:
        """How waitress serves the ingress (also used by the benchmark's baseline endpoint, for a fair comparison)."""
        return {
            "host": self.host,
            "port": self.port,
            "threads": self.ingress_threads,
            "connection_limit": self.ingress_connection_limit,
            "backlog": self.ingress_backlog,
            "channel_timeout": self.ingress_channel_timeout,
            # poll() has no 1024-descriptor ceiling, unlike select().
            "asyncore_use_poll": True,
            # waitress buffers the body before Falcon sees it: cap it there too.
            "max_request_body_size": self.max_body_bytes + 1,
            "ident": "invoice-pipeline-ingress",
            "clear_untrusted_proxy_headers": True,
        }

    def webhook_secrets(self) -> list[str]:
        if self.docspace_webhook_secret is None:
            return []
        return [part.strip() for part in self.docspace_webhook_secret.get_secret_value().split(",") if part.strip()]

    def weak_secrets(self) -> list[str]:
        """One line per comma-separated secret that is too short, naming its position, never its value."""
        if self.docspace_webhook_secret is None:
            return []
        parts = [part.strip() for part in self.docspace_webhook_secret.get_secret_value().split(",")]
        problems = []
        for number, part in enumerate(parts, start=1):
            if (size := short_secret(part)) is not None:
                problems.append(f"secret #{number} of {len(parts)} {size}; each needs at least {MIN_SECRET_LENGTH}")
        return problems
