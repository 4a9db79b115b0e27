"""``--env-file``: settings from a file (``KEY=value`` lines, as ``.env.example`` and ``make run``'s var/demo.env)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


class EnvFileError(ValueError):
    """A line that is neither a setting, a comment nor blank: named by its number, never by its value."""


def read_env_file(path: Path) -> dict[str, str]:
    """The file's settings; a value may be quoted ('…' or "…"); ``#`` starts a comment only at a line's start."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            # The line may hold a secret: say where it is, not what it says.
            raise EnvFileError(f"{path}: line {number} is not KEY=value")
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_env_file(path: Path, environ: MutableMapping[str, str] | None = None) -> Mapping[str, str]:
    """Put the file's settings into the environment, before any settings class reads it; the file wins over what
    the shell set (it was named on purpose). Returns what it set."""
    values = read_env_file(path)
    target = os.environ if environ is None else environ
    target.update(values)
    return values
