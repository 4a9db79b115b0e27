"""The simulator's responses validate against the official ``docspace_api_sdk`` models, so it cannot drift."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from docspace_api_sdk.models.file_dto_integer import FileDtoInteger
from docspace_api_sdk.models.file_operation_dto import FileOperationDto
from docspace_api_sdk.models.folder_dto_integer import FolderDtoInteger
from pydantic import BaseModel

from simulator import DocSpaceSimulator


def response(sim: DocSpaceSimulator, method: str, path: str, **kw: Any) -> Any:
    resp = requests.request(
        method, f"{sim.base_url}/api/2.0/{path}", headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10, **kw
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["response"]


def known_keys(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def check(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate strictly via the SDK and insist every key the simulator sends is one the SDK knows."""
    assert set(data) <= known_keys(model), f"keys unknown to {model.__name__}: {set(data) - known_keys(model)}"
    parsed = model.from_dict(data)  # type: ignore[attr-defined]  # every SDK model has it; BaseModel does not
    assert parsed is not None
    return parsed


@pytest.fixture
def tree(docspace_sim: DocSpaceSimulator) -> dict[str, str]:
    room = docspace_sim.create_room("Client A")
    uploads = docspace_sim.create_folder(room, "Uploads")
    incoming = docspace_sim.create_folder(room, "Incoming")
    file = docspace_sim.upload_file(uploads, "Invoice-0042.pdf", size=86_234)
    return {"room": room, "uploads": uploads, "incoming": incoming, "file": file}


def test_file_info_is_a_file_dto(docspace_sim: DocSpaceSimulator, tree: dict[str, str]) -> None:
    dto = check(FileDtoInteger, response(docspace_sim, "GET", f"files/file/{tree['file']}"))
    assert dto.id == int(tree["file"])
    assert dto.folder_id == int(tree["uploads"])
    assert dto.pure_content_length == 86_234
    assert dto.content_length == "84.21 KB"
    assert dto.file_exst == ".pdf"
    assert dto.root_folder_type.value == 14
    assert dto.parent_room_type.value == 19  # CustomRoom's FolderType
    assert dto.created.utc_time is not None
    assert dto.created_by.display_name == "Simulated Admin"


def test_folders_rooms_and_the_path_are_folder_dtos(docspace_sim: DocSpaceSimulator, tree: dict[str, str]) -> None:
    path = response(docspace_sim, "GET", f"files/folder/{tree['uploads']}/path")
    parsed = [check(FolderDtoInteger, entry) for entry in path]
    assert [p.room_type.value if p.room_type else None for p in parsed] == [None, 5, None]
    room = check(FolderDtoInteger, response(docspace_sim, "GET", f"files/folder/{tree['room']}"))
    assert room.parent_id == int(docspace_sim.rooms_root_id)
    created = check(
        FolderDtoInteger, response(docspace_sim, "POST", f"files/folder/{tree['room']}", json={"title": "X"})
    )
    assert created.title == "X"


def test_folder_contents_hold_dtos(docspace_sim: DocSpaceSimulator, tree: dict[str, str]) -> None:
    content = response(docspace_sim, "GET", f"files/{tree['uploads']}")
    for f in content["files"]:
        check(FileDtoInteger, f)
    check(FolderDtoInteger, content["current"])
    subs = response(docspace_sim, "GET", f"files/{tree['room']}/subfolders")
    assert len([check(FolderDtoInteger, d) for d in subs]) == 2


def test_move_operations_are_file_operation_dtos(docspace_sim: DocSpaceSimulator, tree: dict[str, str]) -> None:
    body = {"fileIds": [tree["file"]], "destFolderId": tree["incoming"], "returnSingleOperation": True}
    (started,) = response(docspace_sim, "PUT", "files/fileops/move", json=body)
    op = check(FileOperationDto, started)
    assert op.finished is False and op.error == ""
    assert docspace_sim.wait_idle(5)
    (finished,) = response(docspace_sim, "GET", "files/fileops", params={"id": op.id})
    done = check(FileOperationDto, finished)
    assert done.finished and done.status.value == 2 and done.processed == "1"
    for f in finished["files"]:
        check(FileDtoInteger, f)
    for d in finished["folders"]:
        check(FolderDtoInteger, d)
