"""A sample DocSpace delivery, signed like DocSpace signs it: ``invoice-pipeline send-test-event``, tests, bench."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import requests

from ingress.signature import resend_headers, sign
from shared.docspace.delivery_encoder import FileDelivery, encode_delivery, wire_time

SIGNATURE_HEADER = "x-docspace-signature-256"
SAMPLE_FILE_ID = 3358285
SAMPLE_FOLDER_ID = 6590430
ROOMS_ROOT_ID = 18902  # a portal's "Rooms" folder: every room's payload.rootId
UPLOADER = "514c7ed5-3141-4448-af92-008bcb707042"
ROOMS_FOLDER_TYPE = 14  # payload.rootFolderType of a file in a room


def sample_delivery(
    *,
    file_id: Any = None,
    folder_id: Any = None,
    title: str = "Invoice-TEST-0001.pdf",
    trigger: Any = "file.uploaded",
    event_id: Any = None,
    created_on: str | None = None,
    entry_type: int = 2,
    webhook: dict[str, Any] | None = None,
) -> bytes:
    """A realistic file delivery (contract §1.3), by the encoder the room scan uses too.

    Without arguments: a ``file.uploaded`` of ``SAMPLE_FILE_ID`` now, with a fresh event id. That file does not
    exist on a real portal, so the classifier will dead-letter it as ``docspace_not_found``: that proves
    ingress -> broker -> classifier. Pass a real file's ids to go further. The tests and the benchmark build
    theirs here too, and pass the values they need (any JSON value where a hostile one is the point).
    """
    now = created_on or wire_time(datetime.now(UTC))
    folder_id = SAMPLE_FOLDER_ID if folder_id is None else folder_id
    return encode_delivery(
        FileDelivery(
            # A fresh id each time, so the ingress and classifier do not take it for a repeat.
            event_id=secrets.randbelow(900_000_000) + 100_000_000 if event_id is None else event_id,
            event_at=now,
            event_by=UPLOADER,
            trigger=trigger,
            file_id=SAMPLE_FILE_ID if file_id is None else file_id,
            folder_id=folder_id,
            title=title,
            root_id=ROOMS_ROOT_ID,
            created_by=UPLOADER,
            modified_by=UPLOADER,
            created_on=now,
            modified_on=now,
            root_folder_type=ROOMS_FOLDER_TYPE,
            root_created_by=UPLOADER,
            entry_type=entry_type,
            webhook=webhook
            if webhook is not None
            else {"id": 0, "name": "invoice-pipeline send-test-event", "url": "", "triggers": [trigger]},
        )
    )


def post_delivery(
    url: str, body: bytes, secret: str, *, timeout: float = 15.0, resent_at: float | None = None
) -> requests.Response:
    """POST the exact bytes with the signature DocSpace would send; ``resent_at``: stamped as an operator's resend."""
    headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: sign(body, secret)}
    if resent_at is not None:
        # A saved delivery is older than the ingress's replay window: the signed stamp lets it through.
        headers.update(resend_headers(body, secret, resent_at))
    return requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
