"""The notifier's settings: SMTP for the manager's e-mail, URL and secret for the processing pipeline."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared.settings import StageSettings


class NotifierSettings(StageSettings):
    smtp_host: str | None = Field(default=None, description="SMTP server; unset = e-mail off")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    smtp_ssl: bool = Field(default=False, description="implicit TLS (usually port 465)")
    smtp_timeout: float = Field(default=15.0, gt=0)
    mail_from: str | None = Field(default=None, description="From: address of the notices")
    pipeline_url: str | None = Field(default=None, description="processing pipeline endpoint; unset = off")
    pipeline_secret: SecretStr | None = Field(default=None, description="signs pipeline calls (Standard Webhooks)")
    pipeline_timeout: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> NotifierSettings:
        if self.smtp_host and not self.mail_from:
            raise ValueError("SMTP_HOST is set but MAIL_FROM is not: notices need a From address")
        if self.pipeline_url and self.pipeline_secret is None:
            raise ValueError("PIPELINE_URL is set but PIPELINE_SECRET is not: pipeline calls are always signed")
        return self
