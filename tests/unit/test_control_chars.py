"""The one place control characters are taken out of text others wrote: for one line, or keeping its layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.control_chars import one_line, printable

# What must never reach a terminal or start a line of its own in a plain-text e-mail.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u2028", "\u2029"]


@given(st.text())
def test_nothing_breaking_a_line_or_driving_a_terminal_survives(text: str) -> None:
    assert not any(c in one_line(text) for c in CONTROLS)
    assert not any(c in printable(text) for c in CONTROLS if c not in "\n\t")
    assert one_line(text).splitlines() in ([], [one_line(text)])


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("x.pdf\r\nBank details changed", "x.pdf Bank details changed", "x.pdf\nBank details changed"),
        ("\x1b[2J\x1b]0;owned\x07title", "[2J ]0;owned title", "[2J]0;ownedtitle"),
        ("a\tb\n  c", "a b   c", "a\tb\n  c"),
        ("\x9b31mred\x85next", "31mred next", "31mrednext"),
    ],
)
def test_one_line_joins_with_a_space_and_printable_keeps_tabs_and_newlines(text: str, line: str, shown: str) -> None:
    assert one_line(text) == line
    assert printable(text) == shown
