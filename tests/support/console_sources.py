"""``Sources`` for a console app in process without a broker: a passing check, no queues, no rules, no journal."""

from __future__ import annotations

from typing import Any

from console.refresh import Refreshing
from console.sources import Sources
from ops.dead_letters import DeadLetterQueues
from ops.doctor import Check
from shared.broker.topology import Topology


def offline_sources(**more: Any) -> Sources:
    """What every page needs, answering at once; ``more`` sets the fields a test is about (a journal, a quota)."""
    return Sources(
        checks=Refreshing("checks", lambda: [Check("broker", "ok", "fine")], 60),
        queues=lambda: [],
        last_run=lambda: None,
        rules=lambda: (None, Check("rules", "fail", "no rules", "set them")),
        dead_letters=DeadLetterQueues([], Topology("unit.")),
        **more,
    )
