"""Invoice rules: the TOML file, the one-client environment shortcut, matching, and clear start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.core.events import IncomingFolder
from shared.core.rules import DEFAULT_EXTENSIONS, DEFAULT_TITLE_PATTERNS, ClientRule, Rules, RulesError, load_rules

TWO_CLIENTS = """\
[[clients]]
name = "acme"
room_id = 6590431
manager_email = "ann@acme.example"
incoming_folder_id = 6590500

[[clients]]
name = "globex"
room_id = "7700001"
manager_email = "bob@globex.example"
incoming_folder = "Eingang"
title_patterns = ["Invoice*", "СЧЁТ*", "*rechnung*"]
extensions = ["PDF", ".Xml"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def client(**changes: object) -> str:
    fields: dict[str, object] = {"name": '"acme"', "room_id": "1", "manager_email": '"ann@acme.example"'}
    fields.update(changes)
    return "[[clients]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())


# --- the file --------------------------------------------------------------------------------------------------


def test_a_file_with_two_clients(tmp_path: Path) -> None:
    rules = load_rules(rules_file=write(tmp_path, TWO_CLIENTS))

    acme, globex = rules.clients
    assert (acme.name, acme.room_id, acme.incoming_folder_id) == ("acme", "6590431", "6590500")
    assert acme.manager_email == "ann@acme.example"
    assert acme.incoming == IncomingFolder(id="6590500", name="Incoming")
    assert acme.title_patterns == DEFAULT_TITLE_PATTERNS
    assert acme.extensions == DEFAULT_EXTENSIONS
    assert (globex.room_id, globex.incoming_folder_id) == ("7700001", None)
    assert globex.incoming == IncomingFolder(id=None, name="Eingang")
    assert globex.title_patterns == ("invoice*", "счёт*", "*rechnung*")
    assert globex.extensions == (".pdf", ".xml")


def test_the_file_accepts_a_path_as_text(tmp_path: Path) -> None:
    assert len(load_rules(rules_file=str(write(tmp_path, TWO_CLIENTS))).clients) == 2


def test_the_file_wins_over_the_environment_shortcut(tmp_path: Path) -> None:
    rules = load_rules(rules_file=write(tmp_path, TWO_CLIENTS), client_room_id="1", manager_email="x@y.example")

    assert [c.name for c in rules.clients] == ["acme", "globex"]


def test_rooms_map_to_their_clients(tmp_path: Path) -> None:
    rules = load_rules(rules_file=write(tmp_path, TWO_CLIENTS))

    assert rules.for_room("6590431") is rules.clients[0]
    assert rules.for_room("7700001") is rules.clients[1]
    assert rules.for_room("18902") is None


def test_custom_patterns_and_extensions_match_case_insensitively(tmp_path: Path) -> None:
    globex = load_rules(rules_file=write(tmp_path, TWO_CLIENTS)).clients[1]

    assert globex.title_matches("INVOICE-42.pdf")
    assert globex.title_matches("СЧЁТ-42.pdf")
    assert globex.title_matches("Schlussrechnung März.pdf")
    assert not globex.title_matches("Contract.pdf")
    assert globex.extension_allowed(".PDF")
    assert globex.extension_allowed(".xml")
    assert not globex.extension_allowed(".docx")


def test_default_patterns_fold_unicode_titles() -> None:
    rule = ClientRule(name="acme", room_id="1", manager_email="ann@acme.example")

    assert rule.title_matches("INVOICE-Müller-№7.PDF")
    assert rule.title_matches("invoice.pdf")
    assert not rule.title_matches("my invoice.pdf")


def test_a_title_in_decomposed_unicode_matches_a_composed_pattern() -> None:
    # macOS uploads arrive in NFD: Cyrillic IO as Cyrillic IE plus a combining diaeresis (U+0308).
    rule = ClientRule(name="x", room_id="1", manager_email="a@b.example", title_patterns=("счёт*",))

    assert rule.title_matches("\u0421\u0427\u0415\u0308\u0422-42.pdf")


# --- the environment shortcut ----------------------------------------------------------------------------------


def test_the_environment_shortcut_makes_one_default_client() -> None:
    rules = load_rules(client_room_id="6590431", manager_email="ann@acme.example", incoming_folder_id="6590500")

    [only] = rules.clients
    assert (only.name, only.room_id, only.manager_email) == ("default", "6590431", "ann@acme.example")
    assert only.incoming == IncomingFolder(id="6590500", name="Incoming")
    assert only.title_patterns == DEFAULT_TITLE_PATTERNS


def test_the_environment_shortcut_treats_an_empty_incoming_folder_id_as_none() -> None:
    [only] = load_rules(client_room_id="6590431", manager_email="ann@acme.example", incoming_folder_id="").clients

    assert only.incoming_folder_id is None


def test_the_environment_shortcut_rejects_a_bad_email() -> None:
    with pytest.raises(RulesError, match="manager_email"):
        load_rules(client_room_id="6590431", manager_email="not-an-address")


# --- errors ----------------------------------------------------------------------------------------------------


def test_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(RulesError, match="does not exist") as raised:
        load_rules(rules_file=missing)
    assert str(missing) in str(raised.value)
    assert "INVOICE_RULES_FILE" in str(raised.value)


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="is not valid TOML"):
        load_rules(rules_file=write(tmp_path, "[[clients]]\nname = acme\n"))


def test_a_bad_email_names_the_client_and_field(tmp_path: Path) -> None:
    text = client() + client(name='"globex"', room_id="2", manager_email='"bob-at-globex"')

    with pytest.raises(RulesError) as raised:
        load_rules(rules_file=write(tmp_path, text))
    assert "clients.1.manager_email" in str(raised.value)


def test_a_duplicate_room_id(tmp_path: Path) -> None:
    text = client(room_id="1") + client(name='"globex"', room_id='"1"')

    with pytest.raises(RulesError, match="share the room_id") as raised:
        load_rules(rules_file=write(tmp_path, text))
    assert "'1'" in str(raised.value)


def test_a_duplicate_name(tmp_path: Path) -> None:
    text = client(room_id="1") + client(room_id="2")

    with pytest.raises(RulesError, match="share the name") as raised:
        load_rules(rules_file=write(tmp_path, text))
    assert "'acme'" in str(raised.value)


def test_empty_title_patterns(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"clients\.0\.title_patterns"):
        load_rules(rules_file=write(tmp_path, client(title_patterns="[]")))


def test_empty_extensions(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"clients\.0\.extensions"):
        load_rules(rules_file=write(tmp_path, client(extensions="[]")))


def test_an_unknown_key_in_a_client(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"clients\.0\.manager_emial"):
        load_rules(rules_file=write(tmp_path, client(manager_emial='"x@y.example"')))


def test_an_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="client"):
        load_rules(rules_file=write(tmp_path, "[[client]]\nname = 'acme'\n"))


def test_a_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"clients\.0\.room_id"):
        load_rules(rules_file=write(tmp_path, "[[clients]]\nname = 'acme'\nmanager_email = 'a@b.example'\n"))


def test_a_file_with_no_clients(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="clients"):
        load_rules(rules_file=write(tmp_path, "clients = []\n"))


def test_nothing_configured() -> None:
    with pytest.raises(RulesError, match="no clients configured") as raised:
        load_rules()
    assert "INVOICE_RULES_FILE" in str(raised.value)
    assert "CLIENT_ROOM_ID" in str(raised.value)


def test_half_an_environment_shortcut_is_nothing_configured() -> None:
    with pytest.raises(RulesError, match="no clients configured"):
        load_rules(client_room_id="6590431")
    with pytest.raises(RulesError, match="no clients configured"):
        load_rules(manager_email="ann@acme.example")


def test_rules_error_is_a_value_error() -> None:
    assert issubclass(RulesError, ValueError)


def test_rules_are_frozen() -> None:
    rules = Rules(clients=(ClientRule(name="acme", room_id="1", manager_email="ann@acme.example"),))

    with pytest.raises(ValueError, match="frozen"):
        rules.clients[0].name = "other"  # type: ignore[misc]  # assigning to a frozen model is what this test tries
