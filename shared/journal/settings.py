"""Where the journal is: the settings the journal writer and the ``trace`` command share."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from shared.config.settings import CommonSettings

DEFAULT_JOURNAL_URL = "sqlite:///var/journal.sqlite3"


class JournalStoreSettings(CommonSettings):
    """The journal's database: an SQLite file on one host, PostgreSQL for several."""

    journal_url: SecretStr = Field(
        default=SecretStr(DEFAULT_JOURNAL_URL),
        description="the decision journal: sqlite:///path (one host) or postgresql://user:password@host/db; "
        "may hold a password, so secret",
    )
    journal_schema: str = Field(
        default="invoice_journal",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="with PostgreSQL: the schema that holds the journal's tables",
    )

    @field_validator("journal_url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sqlite:///", "postgresql://", "postgres://")):
            # Never echo the value: it may hold a password.
            raise ValueError("JOURNAL_URL must start with sqlite:/// or postgresql://")
        return value
