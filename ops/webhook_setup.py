"""A webhook secret DocSpace accepts (the trigger table is in ``shared.docspace.webhooks``)."""

from __future__ import annotations

import secrets
import string

# Specials that survive .env files, docker compose and shells unquoted: no $ # ' " \ space, and no comma
# (DOCSPACE_WEBHOOK_SECRET separates rotated secrets with commas).
SAFE_SPECIAL_CHARS = "-_.!*+=~@^"
SECRET_LENGTH = 40  # DocSpace allows at most 50 characters


def generate_secret(length: int = SECRET_LENGTH) -> str:
    """A random secret that passes DocSpace's password policy: upper, lower, digit and special, at most 50 chars."""
    if not 8 <= length <= 50:
        raise ValueError("a DocSpace webhook secret has 8 to 50 characters")
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, SAFE_SPECIAL_CHARS)
    alphabet = "".join(classes)
    chars = [secrets.choice(group) for group in classes]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
