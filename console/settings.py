"""The console's settings: where it listens, who may log in, how long a session lasts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from shared.config.settings import CommaSeparated
from shared.journal.settings import JournalStoreSettings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSettings(JournalStoreSettings):
    """The operator console (``python -m console``): a web page over the same functions as the CLI."""

    console_host: str = Field(
        default="127.0.0.1",
        description="the console's listening address; any other than loopback needs `CONSOLE_USERS_FILE` or "
        "`CONSOLE_AUTH_PROXY_HEADER`, or the console refuses to start",
    )
    console_port: int = Field(default=8088, ge=1, le=65535, description="the console's port")
    console_users_file: Path | None = Field(
        default=None,
        description="the console's users, one a line: `name:role:argon2-hash` (role `viewer` or `operator`); "
        "`python -m console add-user` writes a line. Only hashes are stored, never a password",
    )
    console_auth_proxy_header: str | None = Field(
        default=None,
        description="trust this header for the user name (`Remote-User` from Authelia, `X-Forwarded-User` from "
        "oauth2-proxy), only from `CONSOLE_AUTH_PROXY_ADDRESSES`; unset = log in with a password",
    )
    console_auth_proxy_addresses: CommaSeparated[str] = Field(
        default=["127.0.0.1", "::1"],
        description="peer addresses (the auth proxy's) whose `CONSOLE_AUTH_PROXY_HEADER` is believed, comma-separated",
    )
    console_operators: CommaSeparated[str] = Field(
        default=[],
        description="behind the auth proxy: the user names with the operator role (replay, purge), comma-separated; "
        "everyone else the proxy lets in is a viewer",
    )
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="the key that signs session cookies (at least 32 characters); unset = a random key per start, "
        "so a restart logs everyone out",
    )
    console_session_minutes: float = Field(
        default=480.0, gt=0, le=7 * 24 * 60, description="minutes a login lasts, from the moment of login"
    )
    console_public_url: str | None = Field(
        default=None,
        description="the address people open, e.g. `https://console.example.com`; with `https://` the session "
        "cookie is `Secure` and HSTS is sent (as they are for any request that arrives over TLS)",
    )
    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="failed logins allowed per user name and per address in `CONSOLE_LOGIN_WINDOW_SECONDS`, then "
        "429 until the window passes",
    )
    console_login_window_seconds: float = Field(
        default=300.0, gt=0, description="the window of `CONSOLE_LOGIN_ATTEMPTS`, seconds"
    )
    console_health_interval: float = Field(
        default=60.0,
        ge=5,
        description="seconds between two runs of `doctor`'s checks behind the Health page (they call DocSpace, SMTP "
        "and the pipeline; a page never waits for them)",
    )

    @field_validator("console_session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("CONSOLE_SESSION_SECRET must be at least 32 characters")
        return value

    @field_validator("console_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("CONSOLE_PUBLIC_URL must start with https:// (or http://)")
        return value.rstrip("/") if value else value

    def has_credentials(self) -> bool:
        return self.console_users_file is not None or bool(self.console_auth_proxy_header)

    def listen_problem(self) -> str | None:
        """Why these settings must not start (another address than loopback with nobody to log in), or None."""
        if is_loopback(self.console_host) or self.has_credentials():
            return None
        return (
            f"CONSOLE_HOST={self.console_host} is not a loopback address and no credentials are configured: set "
            "CONSOLE_USERS_FILE (python -m console add-user) or CONSOLE_AUTH_PROXY_HEADER"
        )
