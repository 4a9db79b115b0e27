"""The ingress's settings: where it listens, how it verifies, how long it waits for the broker."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import CommonSettings

WEBHOOK_PATH = "/docspace/webhook"


class IngressSettings(CommonSettings):
    host: str = Field(default="0.0.0.0", description="interface to listen on")  # noqa: S104 - a server listens
    port: int = Field(default=3000, ge=1, le=65535)
    docspace_webhook_secret: SecretStr | None = Field(
        default=None, description="the webhook secret; several comma-separated during a rotation"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger deliveries get 413")
    ingress_threads: int = Field(default=16, ge=1, le=512, description="waitress worker threads")
    confirm_timeout: float = Field(default=5.0, gt=0, description="seconds to wait for the broker's confirm")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After sent with a 503")
    spool_enabled: bool = Field(default=True, description="keep deliveries on disk while the broker is away")
    spool_dir: str = Field(default="var/spool", description="where the spool lives (a persistent volume)")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024, description="beyond this, 503")

    def webhook_secrets(self) -> list[str]:
        if self.docspace_webhook_secret is None:
            return []
        return [part.strip() for part in self.docspace_webhook_secret.get_secret_value().split(",") if part.strip()]
