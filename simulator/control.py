"""``SimulatorControl``: the portal, webhook sender, faults and call log, and everything a test or demo drives."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from simulator.faults import Faults
from simulator.model import OWNER_ID
from simulator.portal import Portal
from simulator.webhooks.registry import Attempt, triggers_mask
from simulator.webhooks.sender import WebhookSender
from simulator.wire import CallLog


class SimulatorControl(ABC):
    """The simulator's parts and the methods that drive them; ``simulator.admin`` serves them under ``/_sim/``.

    ``DocSpaceSimulator`` (``simulator.server``) puts it behind a real HTTP server, which knows the base URL.
    """

    def __init__(
        self,
        *,
        api_key: str,
        move_delay: float = 0.05,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
        webhook_threads: int = 4,
        send_timeout: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.faults = Faults(seed)
        self.calls = CallLog()
        self.portal = Portal(move_delay=move_delay)
        self.webhooks = WebhookSender(
            retry_delays=retry_delays,
            threads=webhook_threads,
            send_timeout=send_timeout,
            employee=self.portal.employee,
        )
        self.portal.on_event = lambda trigger, payload: self.webhooks.publish(trigger, payload)

    @property
    @abstractmethod
    def base_url(self) -> str:
        """Where the simulator answers: known only to the server that serves it."""

    # --- portal control --------------------------------------------------------------------------------

    @property
    def rooms_root_id(self) -> str:
        return str(self.portal.rooms_root)

    @property
    def my_documents_id(self) -> str:
        return str(self.portal.my_root)

    def create_room(self, title: str, *, room_type: int = 5) -> str:
        return str(self.portal.create_room(title, room_type))

    def create_folder(self, parent_id: str | int, title: str) -> str:
        return str(self.portal.create_folder(parent_id, title))

    def move_folder(self, folder_id: str | int, dest_id: str | int) -> None:
        """Move a folder under ``dest_id`` (say, into another room); it keeps its id. Fires ``folder.moved``."""
        self.portal.move_folder(folder_id, dest_id)

    def upload_file(self, folder_id: str | int, title: str, *, size: int = 84_234, chunked: bool = False) -> str:
        """Simple: file.created then file.uploaded; chunked: only file.uploaded; same title: a new version."""
        return str(self.portal.upload_file(folder_id, title, size=size, chunked=chunked))

    def update_file(self, file_id: str | int, *, size: int | None = None) -> int:
        """A new version by editing; fires file.updated. Returns the new version."""
        return self.portal.update_file(file_id, size=size)

    def lock_file(self, file_id: str | int, locked: bool = True) -> None:
        """A locked file cannot be overwritten by a move (the operation finishes with an error)."""
        self.portal.set_locked(file_id, locked)

    def fail_next_move(self, message: str = "Simulated move failure") -> None:
        """The next move operation finishes with this ``error``."""
        with self.portal.lock:
            self.portal.move_errors.append(message)

    def deny_room(self, room_id: str | int) -> list[int]:
        """The key loses access to a room: its folder, path, contents and subfolder calls answer 403.

        Built from fault rules (one per route shape), so ``faults.remove(id)`` or ``faults.clear()`` undo it.
        """
        rid = str(room_id)
        paths = (
            f"/api/2.0/files/folder/{rid}",
            f"/api/2.0/files/folder/{rid}/*",
            f"/api/2.0/files/{rid}",
            f"/api/2.0/files/{rid}/*",
        )
        return [
            self.faults.add(path=path, error_rate=1.0, error_status=403, error_message="Access denied")
            for path in paths
        ]

    def file(self, file_id: str | int) -> dict[str, Any]:
        """The file's REST ``FileDto`` as the API would return it."""
        with self.portal.lock:
            return self.portal.file_dto(self.portal.file(file_id))

    def files_in(self, folder_id: str | int) -> list[dict[str, Any]]:
        with self.portal.lock:
            fid = self.portal.folder(folder_id).id
            return [self.portal.file_dto(f) for f in self.portal.files.values() if f.folder_id == fid]

    def folder_title(self, folder_id: str | int) -> str:
        with self.portal.lock:
            return str(self.portal.folder(folder_id).title)

    def subfolders(self, folder_id: str | int) -> list[dict[str, Any]]:
        with self.portal.lock:
            fid = self.portal.folder(folder_id).id
            return [self.portal.folder_dto(d) for d in self.portal.folders.values() if d.parent_id == fid]

    def consume_operation_reports(self) -> int:
        """Act as another reader with the same user: take every finished operation report."""
        return self.portal.consume_operation_reports(self.api_key)

    def set_move_delay(self, seconds: float) -> None:
        self.portal.move_delay = seconds

    # --- webhooks --------------------------------------------------------------------------------------

    def register_webhook(
        self,
        url: str,
        secret: str,
        *,
        triggers: Sequence[str] | int | None = None,
        name: str = "invoice-router",
        check: bool = True,
        target_id: str | None = None,
    ) -> int:
        """Create an enabled webhook (HEAD-checked unless ``check=False``); returns the config id."""
        cfg = self.webhooks.create(
            name=name,
            uri=url,
            secret=secret,
            triggers=triggers_mask(triggers),
            enabled=True,
            target_id=target_id,
            check=check,
        )
        return cfg.id

    def age_webhook(self, config_id: int | str, days: float) -> None:
        """Pretend the webhook was created, and last delivered successfully, ``days`` ago.

        DocSpace disables a webhook whose next delivery fails when its last success (or creation) is more than
        3 days old: this is how a test or the demo gets there without waiting three days.
        """
        self.webhooks.age(config_id, days)

    def redeliver(self, event_id: int | str) -> int:
        """Manual redelivery: a new event id, the same event and payload."""
        return self.webhooks.redeliver(event_id)

    def publish(self, trigger: str, payload: dict[str, Any]) -> list[int]:
        """Send an arbitrary payload to the matching webhooks (for shapes the portal model does not make)."""
        return self.webhooks.publish(trigger, payload, acting_user=OWNER_ID)

    def deliveries(self, trigger: str | None = None) -> list[Attempt]:
        """Every delivery attempt so far (all retries included), oldest first."""
        return self.webhooks.attempts(trigger=trigger)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for queued moves to finish and webhook deliveries (with their retries) to settle."""
        end = time.monotonic() + timeout
        while True:
            with self.portal.lock:
                pending = [t for t in self.portal._timers if t.is_alive()]
            if not pending:
                break
            for timer in pending:
                timer.join(max(end - time.monotonic(), 0.0))
            if time.monotonic() >= end:
                return False
        return self.webhooks.wait_idle(max(end - time.monotonic(), 0.0))

    # --- calls -----------------------------------------------------------------------------------------

    def call_count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        caller: str | None = None,
        rate_limited: bool | None = None,
    ) -> int:
        """Calls received matching ``method`` and ``path`` (an fnmatch glob or a route template).

        ``caller`` narrows them to one ``User-Agent`` (each pipeline process sends its own); ``rate_limited``
        to the calls answered (True) or not answered (False) with 429.
        """
        return self.calls.count(method, path, caller=caller, rate_limited=rate_limited)

    def call_counts(self, caller: str | None = None) -> dict[str, int]:
        """Calls per ``"METHOD /route/{template}"`` (of one ``User-Agent`` when ``caller`` is given)."""
        return self.calls.counts(caller)

    def call_times(self, caller: str | None = None) -> list[float]:
        """When each call (of ``caller``) arrived, in ``time.monotonic()`` seconds, oldest first."""
        return self.calls.times(caller)

    def reset_calls(self) -> None:
        self.calls.reset()
