"""What a DocSpace file, folder or room id may be: checked before it reaches a URL, a message or a log line.

DocSpace's own storage numbers its entries (``int`` in its API); rooms on third-party storage have string ids
(a provider prefix such as ``sbox-3-``, then the provider's own id), which DocSpace itself puts into one URL
path segment (contract §1: "Ids are generic ``T``"). Anything else that
arrives where an id belongs (``.``, ``..``, a ``/`` or ``?`` that would change the URL, control characters,
``"²"``, a 4,300-digit number) is not an id but an attack or a bug, and is refused here.
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["MAX_ID_LENGTH", "MAX_NUMERIC_ID", "InvalidId", "parse_id", "small_count"]

# Long enough for any third-party id DocSpace builds from a storage path; short enough that a percent-encoded id
# (at most 4 UTF-8 bytes x 3 characters per code point) keeps the request line under the common 8 KiB limit.
MAX_ID_LENGTH = 512
# DocSpace's numeric ids are 32-bit today; int64 leaves room and is what every header and database can hold.
MAX_NUMERIC_ID = 2**63 - 1
_MAX_DIGITS = len(str(MAX_NUMERIC_ID))

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# Characters that would end or change a URL path segment, whatever encoding a later step applies or forgets.
_URL_SYNTAX = frozenset("/\\?#%")
# Cc: control characters (CR, LF, NUL...); Cs: lone surrogates; Zl/Zp: line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


class InvalidId(ValueError):
    """A value where a DocSpace id belongs that cannot be one; the message says why, never echoing it whole."""


def parse_id(value: object) -> str:
    """The canonical text of a DocSpace id given as JSON (int, integral float or string); raises ``InvalidId``.

    Numeric ids are non-negative integers of at most 19 digits (int64). A string of ASCII digits is a numeric
    id; any other string is a string id (third-party storage, or a GUID where a newer payload uses one): it
    starts with an ASCII letter or digit, is at most ``MAX_ID_LENGTH`` characters, and holds no ``/ \\ ? # %``
    and no control or line-separator characters. Surrounding white space is dropped. ``.``, ``..``, ``--5``
    and ``²`` are refused by the first-character rule.
    """
    if isinstance(value, bool):  # an int subclass, never an id
        raise InvalidId("an id cannot be true or false")
    if isinstance(value, int):
        return _numeric(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidId("an id cannot be a fractional or non-finite number")
        return _numeric(int(value))
    if not isinstance(value, str):
        raise InvalidId(f"an id is a number or a string, not a {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidId("an id cannot be empty")
    if _DIGITS.fullmatch(text):
        if len(text) > _MAX_DIGITS or int(text) > MAX_NUMERIC_ID:
            raise InvalidId(f"a numeric id has at most {_MAX_DIGITS} digits (int64); got {len(text)} digits")
        return text
    return _third_party(text)


def _numeric(value: int) -> str:
    if not 0 <= value <= MAX_NUMERIC_ID:
        raise InvalidId("a numeric id is between 0 and 2^63-1")
    return str(value)


def _third_party(text: str) -> str:
    if len(text) > MAX_ID_LENGTH:
        raise InvalidId(f"an id has at most {MAX_ID_LENGTH} characters; got {len(text)}")
    if not (text[0].isascii() and text[0].isalnum()):
        raise InvalidId(f"an id is a number or starts with an ASCII letter or digit: {_show(text)}")
    if any(ch in _URL_SYNTAX for ch in text):
        raise InvalidId(f"an id cannot contain / \\ ? # or %: {_show(text)}")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise InvalidId(f"an id cannot contain control or line-separator characters: {_show(text)}")
    return text


def _show(text: str) -> str:
    """Enough of a bad id to recognise it in a dead letter, with control characters made visible."""
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def small_count(value: object, *, max_digits: int = 18) -> int | None:
    """A non-negative count given as an int or a string of ASCII digits (at most ``max_digits``); else ``None``.

    For numbers read from places anyone can write (message headers, API answers): ``"²".isdigit()`` is true but
    ``int("²")`` raises, and ``int()`` of a 5,000-digit string raises too. 18 digits always fit in int64.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_NUMERIC_ID else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= max_digits:
            return int(text)
    return None
