"""A sample DocSpace delivery, signed like DocSpace signs it, for ``invoice-pipeline send-test-event``."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

import requests

from ingress.signature import sign

SIGNATURE_HEADER = "x-docspace-signature-256"
SAMPLE_FILE_ID = 3358285
SAMPLE_FOLDER_ID = 6590430


def sample_delivery(
    *, file_id: int | None = None, folder_id: int | None = None, title: str = "Invoice-TEST-0001.pdf"
) -> bytes:
    """A realistic ``file.uploaded`` body (contract §1.3): camelCase, defaults left out, a fresh event id.

    The default file id (``SAMPLE_FILE_ID``, when ``file_id`` is None) does not exist on a real portal, so the
    classifier will dead-letter it as ``docspace_not_found``: that proves ingress -> broker -> classifier. Pass a
    real file's ids to go further.
    """
    file_id = SAMPLE_FILE_ID if file_id is None else file_id
    folder_id = SAMPLE_FOLDER_ID if folder_id is None else folder_id
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    user = "514c7ed5-3141-4448-af92-008bcb707042"
    body = {
        "event": {
            # A fresh id each time, so the ingress and classifier do not take it for a repeat.
            "id": secrets.randbelow(900_000_000) + 100_000_000,
            "createOn": now,
            "createBy": user,
            "trigger": "file.uploaded",
            "triggerId": 256,
        },
        "payload": {
            "id": file_id,
            "parentId": folder_id,
            "securityByUsers": {},
            "folderIdDisplay": folder_id,
            "rootId": 18902,
            "title": title,
            "createBy": user,
            "modifiedBy": user,
            "createOn": now,
            "modifiedOn": now,
            "rootFolderType": 14,
            "rootCreateBy": user,
            "fileEntryType": 2,
        },
        "webhook": {"id": 0, "name": "invoice-pipeline send-test-event", "url": "", "triggers": ["file.uploaded"]},
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def post_delivery(url: str, body: bytes, secret: str, *, timeout: float = 15.0) -> requests.Response:
    """POST the exact bytes with the signature DocSpace would send."""
    headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: sign(body, secret)}
    return requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
