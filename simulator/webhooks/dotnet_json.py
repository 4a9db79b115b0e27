"""JSON as System.Text.Json's default encoder writes it, so the simulator signs the bytes DocSpace would send."""

from __future__ import annotations

import json
from typing import Any


def stj_dumps(value: Any) -> str:
    """Serialise like System.Text.Json's default encoder: compact, non-ASCII and HTML-sensitive chars escaped."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _stj_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_stj_string(str(k))}:{stj_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(stj_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_HTML = set("<>&'+`\"")


def _stj_string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif code < 0x20 or code > 0x7E or ch in _HTML:
            units = ch.encode("utf-16-be")
            for i in range(0, len(units), 2):
                out.append(f"\\u{units[i]:02X}{units[i + 1]:02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
