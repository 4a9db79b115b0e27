"""The mover's settings: DocSpace access and how a name clash in Incoming is resolved."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.settings import DocSpaceSettings, StageSettings


class MoverSettings(DocSpaceSettings, StageSettings):
    move_conflict: Literal["Duplicate", "Overwrite", "Skip"] = Field(
        default="Duplicate",
        description="Duplicate keeps both files; Overwrite replaces a same-named file; Skip leaves it (never silent)",
    )
    move_deadline: float = Field(default=30.0, gt=0, description="seconds to wait for DocSpace's move to finish")
