"""The AsyncAPI document and JSON Schema in contract/ say what the models and the topology say."""

from __future__ import annotations

import json

import yaml

from contract import generate
from shared.broker.topology import Topology
from shared.core.headers import FAILURE_HEADERS, REPLAYS_HEADER, ROUTING_KEY_HEADER
from tests.support.message_builders import invoice_received


def test_the_committed_files_are_what_the_models_generate() -> None:
    for path, text in generate.rendered().items():
        assert path.read_text("utf-8") == text, f"{path.name} drifted from shared/core/events.py: run `make contract`"


def test_the_document_names_the_exchanges_the_topology_declares() -> None:
    doc = yaml.safe_load(generate.ASYNCAPI.read_text("utf-8"))
    assert doc["asyncapi"].startswith("3.")
    topology = Topology("")
    exchanges = {e.name: e.type for e in topology.exchanges()}
    for channel in doc["channels"].values():
        binding = channel["bindings"]["amqp"]["exchange"]
        assert binding["name"] == channel["address"]
        assert exchanges[binding["name"]] == binding["type"]
    assert {c["address"] for c in doc["channels"].values()} == {
        topology.received_exchange,
        topology.dead_letter_exchange,
    }


def test_every_reference_resolves() -> None:
    doc = yaml.safe_load(generate.ASYNCAPI.read_text("utf-8"))

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(doc):
        node: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def test_the_schema_describes_every_field_of_a_real_message() -> None:
    schema = json.loads(generate.INVOICE_RECEIVED_SCHEMA.read_text("utf-8"))
    message = invoice_received()
    body = json.loads(message.to_bytes())
    assert set(body) == set(schema["properties"])
    assert set(schema["required"]) <= set(body)
    assert schema["properties"]["schema_version"]["const"] == 1


def test_the_dead_letter_headers_are_those_the_stages_write() -> None:
    documented = set(generate.DEAD_LETTER_HEADERS["properties"])
    assert documented <= FAILURE_HEADERS | {REPLAYS_HEADER, ROUTING_KEY_HEADER}
    assert {"x-stage", "x-reason", "x-error", "x-attempts", "x-event-id", "x-file-id", "x-invoice-id"} <= documented
