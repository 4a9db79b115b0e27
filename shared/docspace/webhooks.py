"""DocSpace's webhook vocabulary, free of HTTP: trigger flags, the delivery log's and a listing's rows, and which
registered webhook is the pipeline's. ``admin.PortalAdmin`` fetches them; stage logic (the reconciler) reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.docspace.values import WebhookConfig

# WebhookTrigger flags (contract §2.1): the log reports a delivery's trigger as one of these integers.
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
TRIGGER_BITS = {name: bit for bit, name in TRIGGER_NAMES.items()}

# groupStatus flags of the delivery log (contract §2.4): NotSent = 1 (status 0), 3xx = 4, 4xx = 8, 5xx = 16.
# 3xx is a failure too: DocSpace's sender does not follow redirects (contract §1.1), so a 3xx answer delivered
# nothing. The contract's example, 25, leaves it out; 29 is that plus 3xx.
FAILED_DELIVERIES = 1 | 4 | 8 | 16  # 29
PAGE_SIZE = 100  # the most DocSpace returns per page (log and folder contents alike)
FILES_ONLY = 1  # filterType


def trigger_names(mask: int) -> list[str]:
    """``384`` -> ``["file.created", "file.uploaded"]``; 0 means every trigger."""
    if mask == 0:
        return ["* (all)"]
    return [name for bit, name in TRIGGER_NAMES.items() if mask & bit]


def triggers_mask(names: Iterable[str]) -> int:
    """``["file.created", "file.uploaded"]`` -> ``384``; names DocSpace does not have are left out."""
    mask = 0
    for name in names:
        mask |= TRIGGER_BITS.get(name, 0)
    return mask


def register_command(url: str | None = None) -> str:
    """The command that registers the webhook again; it makes a new secret, which the ingress must get too."""
    return f"invoice-pipeline docspace register-webhook --url {url or 'https://<public host>/docspace/webhook'}"


def find_pipeline_webhook(
    configs: Iterable[WebhookConfig], *, path: str, url: str | None = None, config_id: str | None = None
) -> WebhookConfig | None:
    """The pipeline's webhook among the portal's: by id, else by URL, else the one whose URL ends in ``path``.

    Several candidates (an old registration left behind): an enabled one first, then the newest.
    """
    configs = list(configs)
    if config_id:
        return next((c for c in configs if c.id == str(config_id)), None)
    if url:
        candidates = [c for c in configs if c.uri.rstrip("/") == url.rstrip("/")]
    else:
        candidates = [c for c in configs if c.uri.rstrip("/").endswith(path)]
    if not candidates:
        return None
    return sorted(candidates, key=lambda c: (c.enabled, _numeric(c.id)), reverse=True)[0]


@dataclass(frozen=True)
class LoggedDelivery:
    """A row of the delivery log with what it takes to deliver it again: the exact body DocSpace last sent."""

    id: int
    trigger: int  # the WebhookTrigger flag (an integer in the log, unlike the body's trigger name)
    created: datetime | None
    status: int  # 0 = no HTTP answer (pending, or a connection failure); else the HTTP status, 500 for timeouts
    request_payload: str  # a JSON string; empty when DocSpace has not sent it yet


@dataclass(frozen=True)
class UnreadableRow:
    """A row of a page that DocSpace would never write (an id that is no id, ``"²"``, ``-5``...): it keeps its
    place in the page, so the page's length still says where the next one starts, and is counted as skipped."""

    reason: str


@dataclass(frozen=True)
class ListedFile:
    """A file as a folder listing describes it: enough to judge it and to describe it the way a webhook would."""

    id: str
    title: str
    folder_id: str
    version: int
    extension: str
    created: datetime | None
    updated: datetime | None
    created_by: str | None  # the uploader's user id
    updated_by: str | None
    root_id: str | None
    root_folder_type: int | None


def _numeric(value: str) -> int:
    return int(value) if value.isdigit() else -1
