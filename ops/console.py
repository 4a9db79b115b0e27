"""Turns the processes' JSON log lines into short readable lines for a terminal."""

from __future__ import annotations

import json
import sys
import threading

_HIDDEN = {"timestamp", "level", "process", "event", "stage", "message_id"}
_LOCK = threading.Lock()


def render(process: str, line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return f"[{process:<10}] {line}"
    if not isinstance(record, dict):
        return f"[{process:<10}] {line}"
    time = str(record.get("timestamp", ""))[11:19]
    level = str(record.get("level", "info"))
    marker = {"warning": "!", "error": "✗", "critical": "✗"}.get(level, " ")
    stage = record.get("stage")
    name = f"{process}:{stage.split('.')[-1]}" if stage and stage != process else process
    fields = " ".join(
        f"{key}={value}" for key, value in record.items() if key not in _HIDDEN and value not in (None, "", {})
    )
    return f"{time} {marker} [{name:<10}] {record.get('event', '')} {fields}"


def echo(process: str, line: str) -> None:
    with _LOCK:
        print(render(process, line), file=sys.stdout, flush=True)


def say(text: str) -> None:
    with _LOCK:
        print(text, file=sys.stdout, flush=True)
