"""Which rooms are watched, and for each client: its Incoming folder, its manager, what counts as an invoice."""

from __future__ import annotations

import fnmatch
import tomllib
import unicodedata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from shared.core.events import IncomingFolder
from shared.core.ids import parse_id

DEFAULT_TITLE_PATTERNS = ("invoice*",)
DEFAULT_EXTENSIONS = (
    ".pdf", ".docx", ".doc", ".odt", ".xlsx", ".xls", ".ods", ".xml", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
)  # fmt: skip


class RulesError(ValueError):
    """The rules cannot be used; the message says which client and which field, for a clear start-up error."""


class ClientRule(BaseModel):
    """One client: its room, where its invoices go, who hears about them, and what counts as an invoice."""

    # The rules hold no secrets, but an error never needs the input to say what is wrong.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=1, max_length=100)
    room_id: str = Field(min_length=1)
    manager_email: EmailStr
    incoming_folder_id: str | None = None
    incoming_folder: str = Field(default="Incoming", min_length=1, max_length=165)
    title_patterns: tuple[str, ...] = Field(default=DEFAULT_TITLE_PATTERNS, min_length=1)
    extensions: tuple[str, ...] = Field(default=DEFAULT_EXTENSIONS, min_length=1)

    @field_validator("room_id", "incoming_folder_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        # Numbers or strings, as DocSpace's ids are; the check is shared.core.ids's, so a rule can name any room
        # a delivery can, and nothing that would change a DocSpace URL.
        return value if value is None else parse_id(value)

    @field_validator("title_patterns")
    @classmethod
    def _fold_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_fold(pattern) for pattern in value)

    @field_validator("extensions")
    @classmethod
    def _normalise_extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in value)

    @property
    def incoming(self) -> IncomingFolder:
        return IncomingFolder(id=self.incoming_folder_id, name=self.incoming_folder)

    def title_matches(self, title: str) -> bool:
        """Glob patterns, compared case-insensitively with Unicode case folding (so 'СЧЁТ' matches 'счёт*')."""
        folded = _fold(title)
        return any(fnmatch.fnmatchcase(folded, pattern) for pattern in self.title_patterns)

    def extension_allowed(self, extension: str) -> bool:
        return extension.lower() in self.extensions


class Rules(BaseModel):
    """The rules file: the watched clients, no two with the same name or room."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    clients: tuple[ClientRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Rules:
        for field in ("name", "room_id"):
            seen: set[str] = set()
            for client in self.clients:
                value = getattr(client, field)
                if value in seen:
                    raise ValueError(f"two clients share the {field} {value!r}")
                seen.add(value)
        return self

    def for_room(self, room_id: str) -> ClientRule | None:
        return next((client for client in self.clients if client.room_id == room_id), None)


def load_rules(
    *,
    rules_file: str | Path | None = None,
    client_room_id: str | None = None,
    incoming_folder_id: str | None = None,
    manager_email: str | None = None,
) -> Rules:
    """From ``INVOICE_RULES_FILE`` (TOML, ``[[clients]]`` tables), else the one-client environment shortcut."""
    try:
        if rules_file:
            path = Path(rules_file)
            try:
                document = tomllib.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError as exc:
                raise RulesError(f"INVOICE_RULES_FILE {path} does not exist") from exc
            except UnicodeDecodeError as exc:
                raise RulesError(f"INVOICE_RULES_FILE {path} is not UTF-8 text (byte {exc.start})") from exc
            except OSError as exc:  # a directory, no permission
                raise RulesError(f"INVOICE_RULES_FILE {path} cannot be read: {exc.strerror or exc}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise RulesError(f"INVOICE_RULES_FILE {path} is not valid TOML: {exc}") from exc
            except RecursionError as exc:  # tomllib recurses into nested arrays and inline tables
                raise RulesError(f"INVOICE_RULES_FILE {path} nests too deeply") from exc
            return Rules.model_validate(document)
        if client_room_id and manager_email:
            return Rules(
                clients=(
                    ClientRule(
                        name="default",
                        room_id=client_room_id,
                        manager_email=manager_email,
                        incoming_folder_id=incoming_folder_id or None,
                    ),
                )
            )
    except ValidationError as exc:
        raise RulesError(_explain(exc)) from exc
    raise RulesError(
        "no clients configured: set INVOICE_RULES_FILE to a TOML rules file, "
        "or CLIENT_ROOM_ID and MANAGER_EMAIL (and optionally INCOMING_FOLDER_ID) for one client"
    )


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "rules"
        lines.append(f"  {where}: {error['msg']}")
    return "invalid invoice rules:\n" + "\n".join(lines)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()
