"""In-memory fakes for the handlers' ports: they implement the Protocols, record calls, and can be told to fail."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import defaultdict
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from shared.core.errors import BrokerUnavailable
from shared.core.events import InvoiceReceived
from shared.core.outgoing import OutgoingMessage
from shared.docspace.errors import DocSpaceNotFound, DocSpaceRejected
from shared.docspace.values import FileInfo, MoveResult, Room, WebhookConfig
from shared.docspace.webhooks import ListedFile, LoggedDelivery


class _Scripted:
    """Failures queued per method name: the next call of that method raises the queued exception."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._failures: defaultdict[str, list[BaseException]] = defaultdict(list)

    def fail_next(self, method: str, exc: BaseException) -> None:
        self._failures[method].append(exc)

    def _record(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        if self._failures[method]:
            raise self._failures[method].pop(0)

    def calls_to(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]


class FakeDocSpace(_Scripted):
    """Files by id, folders mapped to their room, and named folders per room; implements FileFacts and FileMover.

    ``move_file`` puts the file into the destination (or reports success if it is already there, like the real
    client); ``new_id_on_move`` makes a move return a different file id, as DocSpace's Overwrite can.
    """

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, FileInfo] = {}
        self.folder_room: dict[str, Room] = {}
        self.named_folders: dict[tuple[str, str], str] = {}
        self.new_id_on_move: dict[str, str] = {}
        self.deleted_folders: set[str] = set()
        self._ids = itertools.count(900_000)

    # --- set-up helpers ---

    def add_room(self, room_id: str, title: str, *folder_ids: str) -> Room:
        room = Room(id=room_id, title=title)
        for folder_id in (room_id, *folder_ids):
            self.folder_room[folder_id] = room
        return room

    def add_file(
        self,
        file_id: str,
        title: str,
        folder_id: str,
        *,
        version: int = 1,
        extension: str | None = None,
        size: int | None = 1234,
        updated_at: datetime | None = None,
    ) -> FileInfo:
        info = FileInfo(
            id=file_id,
            title=title,
            folder_id=folder_id,
            version=version,
            extension=extension if extension is not None else ("." + title.rsplit(".", 1)[-1]).lower(),
            size=size,
            web_url=f"https://docspace.example/doceditor?fileid={file_id}",
            uploaded_by="Ann Uploader",
            uploaded_at=None,
            root_folder_type=14,
            updated_at=updated_at,
        )
        self.files[file_id] = info
        return info

    # --- FileFacts ---

    def get_file(self, file_id: str, modified_on: str | None = None) -> FileInfo:
        self._record("get_file", file_id)
        try:
            return self.files[file_id]
        except KeyError:
            raise DocSpaceNotFound(f"file {file_id} not found") from None

    def find_room(self, folder_id: str) -> Room | None:
        self._record("find_room", folder_id)
        return self.folder_room.get(folder_id)

    # --- FileMover ---

    def find_or_create_folder(self, room_id: str, title: str = "Incoming") -> str:
        self._record("find_or_create_folder", room_id, title)
        key = (room_id, title)
        if key not in self.named_folders:
            folder_id = str(next(self._ids))
            self.named_folders[key] = folder_id
            if room_id in self.folder_room:
                self.folder_room[folder_id] = self.folder_room[room_id]
        return self.named_folders[key]

    def forget_folder(self, room_id: str, title: str = "Incoming") -> None:
        """Like the client: the remembered folder is dropped, so the next find-or-create asks (and creates) anew."""
        self._record("forget_folder", room_id, title)
        self.named_folders.pop((room_id, title), None)

    def delete_folder(self, folder_id: str) -> None:
        """Someone deleted a folder in DocSpace: moves into it fail with 404 (the fake still remembers its id)."""
        self.deleted_folders.add(folder_id)

    def move_file(self, file_id: str, dest_folder_id: str, *, conflict: str = "Duplicate") -> MoveResult:
        self._record("move_file", file_id, dest_folder_id, conflict)
        info = self.files.get(file_id)
        if info is None:
            raise DocSpaceNotFound(f"file {file_id} not found")
        if dest_folder_id in self.deleted_folders:
            raise DocSpaceNotFound(f"folder {dest_folder_id} not found")
        if info.folder_id == dest_folder_id:
            return MoveResult(file_id=file_id, folder_id=dest_folder_id, confirmed_by="file_location", file=info)
        new_id = self.new_id_on_move.get(file_id, file_id)
        del self.files[file_id]
        moved = self.files[new_id] = dataclasses.replace(info, id=new_id, folder_id=dest_folder_id)
        # Like the real client: the operation's report lists the moved file (its version, title, uploader).
        return MoveResult(file_id=new_id, folder_id=dest_folder_id, confirmed_by="operation", file=moved)


class RecordingEmitter:
    """The ``emit`` callable: collects events; ``fail_next()`` makes the next emit raise BrokerUnavailable."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.attempts = 0
        self._failures: list[BaseException] = []

    def fail_next(self, exc: BaseException | None = None) -> None:
        self._failures.append(exc or BrokerUnavailable("the broker nacked the publish"))

    def __call__(self, event: Any) -> None:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        self.events.append(event)


class FakePublisher:
    """``Publisher.publish``: keeps each message and its future, unsettled until the test confirms or fails it.

    ``refuse_next()`` makes the next publish fail at once (the broker away); ``confirm_all()``, ``fail_all()``
    settle what waits, as the broker's confirms (or a lost connection) would.
    """

    def __init__(self, *, confirm_at_once: bool = False) -> None:
        self.messages: list[OutgoingMessage] = []
        self.waiting: list[Future[None]] = []
        self.sent = threading.Event()  # set on every publish
        self._confirm_at_once = confirm_at_once
        self._refusals: list[BaseException] = []
        self._lock = threading.Lock()

    def refuse_next(self, exc: BaseException | None = None) -> None:
        self._refusals.append(exc or BrokerUnavailable("not connected to the broker"))

    def publish(self, message: OutgoingMessage) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self.messages.append(message)
            if self._refusals:
                future.set_exception(self._refusals.pop(0))
            elif self._confirm_at_once:
                future.set_result(None)
            else:
                self.waiting.append(future)
        self.sent.set()
        return future

    def confirm_all(self) -> None:
        for future in self._take_waiting():
            future.set_result(None)

    def fail_all(self, exc: BaseException | None = None) -> None:
        for future in self._take_waiting():
            future.set_exception(exc or BrokerUnavailable("the broker did not confirm in time"))

    def _take_waiting(self) -> list[Future[None]]:
        with self._lock:
            waiting, self.waiting = self.waiting, []
        return waiting


class FakeMailer(_Scripted):
    """Implements Mailer: records every notice it was asked to send and returns a stable Message-ID."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[InvoiceReceived] = []

    def send_invoice_notice(self, invoice: InvoiceReceived) -> str:
        self._record("send_invoice_notice", invoice.invoice_id)
        self.sent.append(invoice)
        return f"<invoice-{invoice.invoice_id}@example.test>"


class FakePipeline(_Scripted):
    """Implements PipelineTrigger: records every invoice it was asked to start processing."""

    def __init__(self) -> None:
        super().__init__()
        self.triggered: list[InvoiceReceived] = []

    def trigger(self, invoice: InvoiceReceived) -> None:
        self._record("trigger", invoice.invoice_id)
        self.triggered.append(invoice)


class FakePortal(_Scripted):
    """Implements the reconciler's Portal: webhooks, a delivery log (newest first) and rooms' files by date.

    ``enable_refused`` makes ``enable_webhook`` answer like DocSpace when its HEAD to the URL fails.
    """

    def __init__(self) -> None:
        super().__init__()
        self.webhooks: list[WebhookConfig] = []
        self.log: list[LoggedDelivery] = []
        self.room_files: defaultdict[str, list[ListedFile]] = defaultdict(list)
        self.enable_refused = False

    def add_webhook(
        self, *, enabled: bool = True, uri: str = "https://hooks.example/docspace/webhook"
    ) -> WebhookConfig:
        config = WebhookConfig(
            id=str(2621 + len(self.webhooks)),
            name="invoice-pipeline",
            uri=uri,
            enabled=enabled,
            ssl=True,
            triggers=384,
            created_on=None,
            last_success_on=None,
            last_failure_on=None,
            last_failure_content=None,
            last_status=None,
        )
        self.webhooks.append(config)
        return config

    def add_file(self, room_id: str, file_id: str, title: str, *, at: datetime, version: int = 1) -> ListedFile:
        listed = ListedFile(
            id=file_id,
            title=title,
            folder_id=f"{room_id}-uploads",
            version=version,
            extension=("." + title.rsplit(".", 1)[-1]).lower(),
            created=at,
            updated=at,
            created_by="3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",
            updated_by="3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",
            root_id="18902",
            root_folder_type=14,
        )
        self.room_files[room_id].append(listed)
        return listed

    def add_failure(self, log_id: int, *, trigger: int, at: datetime, file_id: str, status: int = 0) -> None:
        body = (
            f'{{"event":{{"id":{log_id},"createOn":"{at:%Y-%m-%dT%H:%M:%SZ}","trigger":"{_TRIGGER_NAME[trigger]}"}},'
            f'"payload":{{"id":{file_id},"parentId":6590431,"title":"Invoice-{file_id}.pdf","fileEntryType":2}},'
            f'"webhook":{{"id":2621,"retryCount":5}}}}'
        )
        self.log.append(LoggedDelivery(id=log_id, trigger=trigger, created=at, status=status, request_payload=body))

    # --- Portal ---

    def list_webhooks(self) -> list[WebhookConfig]:
        self._record("list_webhooks")
        return list(self.webhooks)

    def enable_webhook(self, config: WebhookConfig) -> WebhookConfig:
        self._record("enable_webhook", config.id)
        if self.enable_refused:
            raise DocSpaceRejected("DocSpace PUT settings/webhook/enable -> 400: webhook URL not available")
        enabled = dataclasses.replace(config, enabled=True)
        self.webhooks = [enabled if c.id == config.id else c for c in self.webhooks]
        return enabled

    def failed_deliveries(self, config_id: str, *, start: int = 0, count: int = 100) -> list[LoggedDelivery]:
        self._record("failed_deliveries", config_id, start)
        rows = sorted(self.log, key=lambda r: r.id, reverse=True)
        return rows[start : start + count]

    def files_by_date(self, folder_id: str, *, start: int = 0, count: int = 100) -> list[ListedFile]:
        self._record("files_by_date", folder_id, start)
        files = sorted(self.room_files[folder_id], key=lambda f: (f.updated, f.id), reverse=True)
        return files[start : start + count]


_TRIGGER_NAME = {128: "file.created", 256: "file.uploaded", 512: "file.updated"}


class MemoryAnnouncer:
    """The reconciler's ``announce`` port: collects what would have been published."""

    def __init__(self) -> None:
        self.announced: list[Any] = []

    def __call__(self, item: Any) -> None:
        self.announced.append(item)

    def file_ids(self) -> list[str]:
        return [str(a.file_id) for a in self.announced]
