"""Opens the journal store a ``JOURNAL_URL`` names: an SQLite file or a PostgreSQL database."""

from __future__ import annotations

from shared.journal.settings import JournalStoreSettings
from shared.journal.sqlite_store import SqliteJournalStore
from shared.journal.store import JournalStore


def open_journal_store(url: str, *, schema: str = "invoice_journal") -> JournalStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://user@host/db``."""
    if url.startswith("sqlite:///"):
        return SqliteJournalStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        # Imported only here: psycopg costs a process about 20 MiB, which an SQLite journal's readers (the
        # console, trace) should not pay.
        from shared.journal.postgres_store import PostgresJournalStore

        return PostgresJournalStore(url, schema=schema)
    # Name only the scheme: the rest of a URL may carry a password.
    scheme = f"{url.split('://', 1)[0]}://…" if "://" in url else "a value without a scheme"
    raise ValueError(f"JOURNAL_URL must start with sqlite:/// or postgresql://, got {scheme}")


def journal_store(settings: JournalStoreSettings) -> JournalStore:
    return open_journal_store(settings.journal_url.get_secret_value(), schema=settings.journal_schema)
