"""What registering a DocSpace webhook needs: the trigger bits (contract §2.1) and a secret DocSpace accepts."""

from __future__ import annotations

import secrets
import string

FILE_CREATED = 128
FILE_UPLOADED = 256
# The two triggers that can carry a new invoice; file.updated etc. would only be ignored by the classifier.
INVOICE_TRIGGERS = FILE_CREATED | FILE_UPLOADED  # 384

TRIGGER_NAMES = {
    1: "user.created", 2: "user.invited", 4: "user.updated", 8: "user.deleted",
    16: "group.created", 32: "group.updated", 64: "group.deleted",
    128: "file.created", 256: "file.uploaded", 512: "file.updated", 1024: "file.trashed", 2048: "file.deleted",
    4096: "file.restored", 8192: "file.copied", 16384: "file.moved",
    32768: "folder.created", 65536: "folder.updated", 131072: "folder.trashed", 262144: "folder.deleted",
    524288: "folder.restored", 1048576: "folder.copied", 2097152: "folder.moved",
    4194304: "room.created", 8388608: "room.updated", 16777216: "room.archived", 33554432: "room.deleted",
    67108864: "room.restored", 134217728: "room.copied",
    268435456: "form.submit", 536870912: "form.filled.out", 1073741824: "form.stopped",
    2147483648: "agent.created", 4294967296: "agent.updated", 8589934592: "agent.deleted",
    17179869184: "file.downloaded", 34359738368: "folder.downloaded",
}  # fmt: skip

# Specials that survive .env files, docker compose and shells unquoted: no $ # ' " \ space, and no comma
# (DOCSPACE_WEBHOOK_SECRET separates rotated secrets with commas).
SAFE_SPECIAL_CHARS = "-_.!*+=~@^"
SECRET_LENGTH = 40  # DocSpace allows at most 50 characters


def trigger_names(mask: int) -> list[str]:
    """``384`` -> ``["file.created", "file.uploaded"]``; 0 means every trigger."""
    if mask == 0:
        return ["* (all)"]
    return [name for bit, name in TRIGGER_NAMES.items() if mask & bit]


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
