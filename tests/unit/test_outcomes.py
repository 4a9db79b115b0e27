"""The outcome words are a contract: the dashboards and alerts in deploy/ query them by value."""

from __future__ import annotations

import re
from pathlib import Path

from shared.core.handling import Handled, Outcome

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# stage_messages_total{...outcome="word"...} in a dashboard's JSON (quotes escaped) or an alert rule's YAML.
_QUERIED = re.compile(r'stage_messages_total\{[^}]*outcome=\\?"([a-z_]+)')


def test_every_outcome_the_dashboards_query_is_one_a_stage_can_report() -> None:
    queried = {word for path in DEPLOY.rglob("*") if path.is_file() for word in _QUERIED.findall(path.read_text())}
    assert queried, "no stage_messages_total query found in deploy/: the pattern above no longer matches"
    assert queried <= {outcome.value for outcome in Outcome}


def test_an_outcome_is_logged_and_counted_as_its_plain_word() -> None:
    # The consumer loop logs str(outcome) and counts it as a Prometheus label (str() too): never "Outcome.IGNORED".
    assert str(Outcome.PIPELINE_CALLED) == "pipeline_called"
    assert f"{Outcome.DEAD_LETTERED}" == "dead_lettered"
    assert Handled().outcome == "done"
