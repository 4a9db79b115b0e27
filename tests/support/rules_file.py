"""The client rules file (``INVOICE_RULES_FILE``) a test writes: one ``[[clients]]`` table per client."""

from __future__ import annotations

from pathlib import Path


def write_rules(folder: Path, clients: dict[str, tuple[str, str]]) -> Path:
    """Write ``folder/rules.toml`` for ``{name: (room_id, manager_email)}``; return its path."""
    path = folder / "rules.toml"
    path.write_text(
        "\n".join(
            f'[[clients]]\nname = "{name}"\nroom_id = "{room}"\nmanager_email = "{email}"\n'
            for name, (room, email) in clients.items()
        ),
        encoding="utf-8",
    )
    return path
