"""A signed, DocSpace-shaped 1 KiB webhook delivery for the load generator."""

from __future__ import annotations

import json

from ingress.signature import sign

SECRET = "bench-Webhook-Secret!1"
SIZE = 1024


def delivery(file_id: int = 3358301, size: int = SIZE) -> bytes:
    """A ``file.created`` delivery padded (in the title) to exactly ``size`` bytes."""
    doc = {
        "event": {"id": 141022, "createOn": "2026-09-18T08:14:03Z", "createBy": "3f1d2c4e", "trigger": "file.created"},
        "payload": {
            "id": file_id,
            "parentId": 6590431,
            "securityByUsers": {},
            "folderIdDisplay": 6590431,
            "rootId": 18902,
            "title": "",
            "createBy": "3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",
            "modifiedBy": "3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",
            "createOn": "2026-09-18T08:14:02Z",
            "modifiedOn": "2026-09-18T08:14:02Z",
            "rootFolderType": 14,
            "fileEntryType": 2,
        },
        "webhook": {"id": 2622, "name": "invoice-router", "url": "http://127.0.0.1/docspace/webhook"},
    }
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["payload"]["title"] = "Invoice-" + "x" * max(size - base - len("Invoice-.pdf"), 0) + ".pdf"
    return json.dumps(doc, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    return sign(body, secret)
