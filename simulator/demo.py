"""The demo portal that ``make run`` and the compose demo show: one client room, an invoice and a photo to upload."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.server import DocSpaceSimulator

ROOM_TITLE = "Acme Ltd"
MANAGER_EMAIL = "anna@acme.example"
UPLOAD_PATH = ("Uploads", "2026", "November")
INVOICE_TITLE = "Invoice-2026-0042.pdf"
PHOTO_TITLE = "Team photo.jpg"


@dataclass(frozen=True)
class DemoPortal:
    """Where the demo's uploads go."""

    room_id: str
    upload_folder_id: str  # Uploads/2026/November: an invoice three folders deep, as clients file them


def seed_demo(sim: DocSpaceSimulator) -> DemoPortal:
    """Create the client room and its upload folders. A fresh simulator always gives them the same ids."""
    room = sim.create_room(ROOM_TITLE)
    folder = room
    for title in UPLOAD_PATH:
        folder = sim.create_folder(folder, title)
    return DemoPortal(room_id=room, upload_folder_id=folder)


def upload_demo_files(sim: DocSpaceSimulator, portal: DemoPortal) -> str:
    """Upload the invoice and the photo (each fires DocSpace's webhooks); returns the invoice's file id."""
    invoice = sim.upload_file(portal.upload_folder_id, INVOICE_TITLE)
    sim.upload_file(portal.upload_folder_id, PHOTO_TITLE)
    return invoice
