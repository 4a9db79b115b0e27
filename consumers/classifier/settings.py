"""The classifier's settings: DocSpace access, which triggers it takes, and the client rules."""

from __future__ import annotations

from pydantic import Field

from shared.config.settings import RATE_LIMIT_SHARE, CommaSeparated, DocSpaceSettings, StageSettings
from shared.core.rules import Rules, load_rules


class ClassifierSettings(DocSpaceSettings, StageSettings):
    """The classifier's settings, from the environment."""

    # The classifier and the mover usually share one API key, and DocSpace counts per key. The classifier decides
    # from the signed delivery: it only looks up a room's path once per folder and ROOM_CACHE_TTL_SECONDS (and reads
    # a file when a delivery does not name its upload). The mover's two calls per invoice take the rest.
    docspace_rate_limit_per_minute: int = Field(default=60, ge=1, description=RATE_LIMIT_SHARE)
    classifier_triggers: CommaSeparated[str] = Field(
        default=["file.created", "file.uploaded"],
        description="triggers that may carry a new invoice, comma-separated; others are acknowledged and counted as "
        "`wrong_trigger`",
    )
    invoice_rules_file: str | None = Field(
        default=None, description="TOML file of clients (`[[clients]]` tables: see Configuration, Clients and rules)"
    )
    client_room_id: str | None = Field(
        default=None, description="one-client shortcut instead of a rules file: the client's room id"
    )
    incoming_folder_id: str | None = Field(
        default=None,
        description="one-client shortcut: the id of the room's Incoming folder (optional: without it a folder named "
        "`Incoming` is found or created)",
    )
    manager_email: str | None = Field(
        default=None, description="one-client shortcut: the account manager who is e-mailed about each invoice"
    )

    def rules(self) -> Rules:
        """The client rules these settings name (raises ``RulesError`` with what is wrong)."""
        return load_rules(
            rules_file=self.invoice_rules_file,
            client_room_id=self.client_room_id,
            incoming_folder_id=self.incoming_folder_id,
            manager_email=self.manager_email,
        )
