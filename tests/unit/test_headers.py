"""Header names live in shared/core/headers.py: the modules that write and read a failed message's headers name none."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.core import headers

ROOT = Path(__file__).resolve().parents[2]
# The consumer loop and the publisher write them, ``invoice-pipeline dlq`` reads and rewrites them.
READERS_AND_WRITERS = (
    "shared/broker/consumer.py",
    "shared/broker/publisher.py",
    "ops/dead_letters.py",
    "ops/cli_dlq.py",
)


@pytest.mark.parametrize("path", READERS_AND_WRITERS)
def test_no_header_name_is_spelled_outside_the_headers_module(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text("utf-8"))
    spelled = sorted(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("x-")
    )
    assert spelled == [], f"{path} spells header names; name them in shared/core/headers.py: {spelled}"


def test_a_replay_keeps_the_routing_key_and_sheds_the_failure_story() -> None:
    assert headers.ROUTING_KEY_HEADER not in headers.FAILURE_HEADERS
    assert headers.REPLAYS_HEADER not in headers.FAILURE_HEADERS
    assert {headers.ATTEMPT_HEADER, headers.SEQ_HEADER, headers.DEATH_HEADER} <= headers.FAILURE_HEADERS
