"""The classifier's settings: DocSpace access, which triggers it takes, and the client rules."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.rules import Rules, load_rules
from shared.settings import DocSpaceSettings, StageSettings, split_csv


class ClassifierSettings(DocSpaceSettings, StageSettings):
    """The classifier's settings, from the environment."""

    # The classifier and the mover usually share one API key, and DocSpace counts per key. The classifier decides
    # from the signed delivery: it only looks up a room's path once per folder and ROOM_CACHE_TTL_SECONDS (and reads
    # a file when a delivery does not name its upload). The mover's two calls per invoice take the rest.
    docspace_rate_limit_per_minute: int = Field(
        default=60, ge=1, description="DocSpace requests per minute this process may send (its share of 1,500)"
    )
    classifier_triggers: Annotated[list[str], NoDecode] = Field(
        default=["file.created", "file.uploaded"], description="triggers that may carry a new invoice"
    )
    invoice_rules_file: str | None = Field(default=None, description="TOML file of clients ([[clients]] tables)")
    client_room_id: str | None = None
    incoming_folder_id: str | None = None
    manager_email: str | None = None

    @field_validator("classifier_triggers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_csv(value)

    def rules(self) -> Rules:
        """The client rules these settings name (raises ``RulesError`` with what is wrong)."""
        return load_rules(
            rules_file=self.invoice_rules_file,
            client_room_id=self.client_room_id,
            incoming_folder_id=self.incoming_folder_id,
            manager_email=self.manager_email,
        )
