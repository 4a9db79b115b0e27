"""The notifier's settings: SMTP for the manager's e-mail, URL and secret for the processing pipeline."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared.config.plaintext import check_smtp_login, check_url
from shared.config.settings import MIN_SECRET_LENGTH, StageSettings, short_secret


class NotifierSettings(StageSettings):
    """The notifier's settings (SMTP, the pipeline endpoint), from the environment."""

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server; unset → e-mail off (notices are acknowledged and counted as `email_disabled`)",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="the SMTP server's port")
    smtp_username: str | None = Field(
        default=None,
        description="login, when the server wants one; needs `SMTP_STARTTLS` or `SMTP_SSL` unless the server is this "
        "machine or `ALLOW_INSECURE_TRANSPORT` is set",
    )
    smtp_password: SecretStr | None = Field(default=None, description="the login's password (with `SMTP_USERNAME`)")
    smtp_starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    smtp_ssl: bool = Field(default=False, description="implicit TLS (usually port 465)")
    smtp_timeout: float = Field(default=15.0, gt=0, description="seconds")
    mail_from: str | None = Field(default=None, description="From address of the notices; required with `SMTP_HOST`")
    pipeline_url: str | None = Field(
        default=None,
        description="your processing pipeline; unset → off (counted as `pipeline_disabled`). `https://` (`http://` "
        "only to this machine, or with `ALLOW_INSECURE_TRANSPORT`). It may hold a token: logs, dead letters and "
        "`doctor` show only its scheme and host",
    )
    pipeline_secret: SecretStr | None = Field(
        default=None,
        description="signs each call: `webhook-id` (= invoice id, also sent as `Idempotency-Key`), "
        '`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. A '
        "`whsec_<base64>` secret is base64-decoded; any other string is used as its UTF-8 bytes",
    )
    pipeline_timeout: float = Field(default=15.0, gt=0, description="seconds")

    @model_validator(mode="after")
    def _complete(self) -> NotifierSettings:
        if self.smtp_host and not self.mail_from:
            raise ValueError("SMTP_HOST is set but MAIL_FROM is not: notices need a From address")
        if self.pipeline_url and self.pipeline_secret is None:
            raise ValueError("PIPELINE_URL is set but PIPELINE_SECRET is not: pipeline calls are always signed")
        self.transport_notes()  # raises InsecureTransport (a ValueError) for plain text to another host
        if self.pipeline_secret is not None:
            # The same floor as the webhook secret. A Standard Webhooks "whsec_" prefix is not secret: only what
            # follows it counts (consumers/notifier/pipeline.py, signing_key).
            size = short_secret(self.pipeline_secret.get_secret_value().removeprefix("whsec_"))
            if size is not None:
                raise ValueError(f"PIPELINE_SECRET {size}; it needs at least {MIN_SECRET_LENGTH}")
        return self

    def transport_notes(self) -> list[str]:
        """What plain-text transport these settings allow, for a log line at start and for ``doctor``."""
        notes = []
        if self.pipeline_url:
            notes.append(check_url("PIPELINE_URL", self.pipeline_url, allow_insecure=self.allow_insecure_transport))
        if self.smtp_host:
            notes.append(
                check_smtp_login(
                    self.smtp_host,
                    login=self.smtp_username is not None,
                    tls=self.smtp_ssl or self.smtp_starttls,
                    allow_insecure=self.allow_insecure_transport,
                )
            )
        return [note for note in notes if note]
