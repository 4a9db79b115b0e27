"""Takes control characters out of text others wrote, before a terminal or a plain-text e-mail shows it (pure)."""

from __future__ import annotations

import re

# The C0 and C1 sets and DEL, and U+2028/U+2029: str.splitlines() (and so the email package, and many mail
# clients) breaks lines at these too, NEL (U+0085) included. ESC and CSI (U+009B) start terminal escape sequences.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The same without tab and line feed, for multi-line text whose layout is worth keeping (a JSON body, an error).
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """``text`` on one line: every run of control characters (line breaks included) becomes one space."""
    return _CONTROLS.sub(" ", text).strip()


def printable(text: str) -> str:
    """``text`` without control characters except ``\\n`` and ``\\t``: no escape sequence reaches a terminal."""
    return _CONTROLS_BUT_LAYOUT.sub("", text)
