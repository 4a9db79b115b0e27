"""The docs stay true: the configuration reference matches the settings; the README is a front page, its links work."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from shared.config.settings import StageSettings
from tools import config_reference

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# What a newcomer sees before scrolling: a laptop terminal or a repository page.
FIRST_SCREEN_LINES = 25
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    page = config_reference.PAGE.read_text("utf-8")
    assert page == config_reference.render(), "docs/configuration-reference.md is stale: run `make docs`"


def test_every_setting_of_every_process_has_a_description() -> None:
    for process, cls in config_reference.PROCESSES.items():
        bare = [name.upper() for name, field in cls.model_fields.items() if not field.description]
        assert not bare, f"{process} settings without a Field description: {bare}"


def test_a_setting_without_a_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bare(StageSettings):
        """A process whose new setting nobody described."""

        undescribed_knob: int = Field(default=1)

    monkeypatch.setitem(config_reference.PROCESSES, "bare", Bare)
    with pytest.raises(ValueError, match=r"settings in no section: \['undescribed_knob'\]"):
        config_reference.render()
    sections = (*config_reference.SECTIONS, config_reference.Section(Bare, "Bare"))
    monkeypatch.setattr(config_reference, "SECTIONS", sections)
    with pytest.raises(ValueError, match="UNDESCRIBED_KNOB has no Field description"):
        config_reference.render()


def test_a_default_that_differs_between_processes_is_shown_for_each() -> None:
    page = config_reference.render()
    row = next(line for line in page.splitlines() if line.startswith("| `DOCSPACE_RATE_LIMIT_PER_MINUTE` |"))
    assert "classifier, reconciler `60`; mover `1360`" in row
    row = next(line for line in page.splitlines() if line.startswith("| `METRICS_PORT` |"))
    assert "ingress `9100`" in row and "classifier, mover, notifier, reconciler, journal `0`" in row


def test_the_readme_shows_the_two_commands_on_its_first_screen() -> None:
    first_screen = README.read_text("utf-8").splitlines()[:FIRST_SCREEN_LINES]
    assert any(line.startswith("make run ") for line in first_screen)
    assert any(line.startswith("make test ") for line in first_screen)


def test_the_readme_is_a_front_page() -> None:
    assert len(README.read_text("utf-8").splitlines()) <= 250, "move the detail into docs/"


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_the_links_of_the_root_pages_lead_to_files(page: str) -> None:
    text = (ROOT / page).read_text("utf-8")
    broken = [target for target in LINK.findall(text) if "://" not in target and not (ROOT / target).exists()]
    assert not broken, f"{page} links to missing files: {broken}"


def _nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    assert isinstance(items, Iterable)
    return set().union(*(_nav_pages(item) for item in items))


def test_every_docs_page_is_in_the_sites_navigation() -> None:
    in_nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text("utf-8"))["nav"])
    on_disk = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert on_disk == in_nav
