"""Generates ``contract/asyncapi.yaml`` and ``contract/invoice-received.schema.json`` from ``shared/core/events.py``.

``make contract`` (``python -m contract.generate``) writes them; ``--check`` exits 1 when the files on disk differ
from what the models say (tests/unit/test_contract.py does the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from shared.broker.topology import DEAD_LETTER_EXCHANGE, RECEIVED_EXCHANGE
from shared.core.events import InvoiceDetected, InvoiceReceived

HERE = Path(__file__).resolve().parent
ASYNCAPI = HERE / "asyncapi.yaml"
INVOICE_RECEIVED_SCHEMA = HERE / "invoice-received.schema.json"
AMQP_BINDING = "0.3.0"

# What a dead-lettered message carries besides its original body (shared/broker/consumer.py writes them).
DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Why a stage gave up on the message. The body and message id are the original message's.",
    "properties": {
        "x-stage": {"type": "string", "description": "the stage that gave up: classifier, mover, notifier.email, ..."},
        "x-reason": {"type": "string", "description": "a short word: docspace_not_found, retries_exhausted, bug, ..."},
        "x-error": {"type": "string", "maxLength": 2000, "description": "the error text (never a secret)"},
        "x-attempts": {"type": "integer", "minimum": 1, "description": "attempts made, the last one included"},
        "x-first-failure": {"type": "string", "format": "date-time"},
        "x-last-failure": {"type": "string", "format": "date-time"},
        "x-event-id": {"type": "string", "description": "the DocSpace delivery's event id, when known"},
        "x-file-id": {"type": "string", "description": "the DocSpace file id, when known"},
        "x-invoice-id": {"type": "string", "description": "'<file id>:v<version>', when known"},
        "x-original-routing-key": {"type": "string", "description": "the routing key the message first had"},
        "x-replays": {"type": "integer", "minimum": 1, "description": "times `dlq replay` sent it back"},
        "x-death": {
            "type": "array",
            "description": "RabbitMQ's own record, when the broker dead-lettered it after the delivery limit",
        },
    },
    "required": ["x-stage", "x-reason"],
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(InvoiceReceived, "serialization"), (InvoiceDetected, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    return dict(sorted(top["$defs"].items()))


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING,
        }
    }


def _message(name: str, title: str, summary: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        **extra,
        "payload": payload,
        "bindings": {"amqp": {"messageType": name.removeprefix("DeadLettered"), "bindingVersion": AMQP_BINDING}},
    }


def asyncapi() -> dict[str, Any]:
    ref = "#/components/schemas/"
    dead = {"$ref": "#/components/schemas/DeadLetterHeaders"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "DocSpace invoice pipeline: published events",
            "version": "1.0.0",
            "description": (
                "What the pipeline publishes for systems downstream. Bind your own queue to `invoice.received`; "
                "readers ignore fields they do not know, and a breaking change bumps `schema_version`. "
                "Every exchange name carries the deployment's TOPOLOGY_PREFIX (empty by default). "
                "Generated from shared/core/events.py by `make contract`; do not edit by hand."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ the pipeline publishes to (its AMQP_URL).",
            }
        },
        "channels": {
            "invoiceReceived": {
                "address": RECEIVED_EXCHANGE,
                "title": "Invoices received",
                "description": (
                    "Topic exchange. One message per invoice that now sits in its client's Incoming folder. "
                    "Routing key: the client's name (bind with `#` for every client). At least once: deduplicate "
                    "on `invoice_id` (also the AMQP message id)."
                ),
                "messages": {"InvoiceReceived": {"$ref": "#/components/messages/InvoiceReceived"}},
                "bindings": _exchange(RECEIVED_EXCHANGE, "topic"),
            },
            "deadLetters": {
                "address": DEAD_LETTER_EXCHANGE,
                "title": "Dead letters",
                "description": (
                    "Direct exchange. A message a stage gave up on, routed by the name of the stage's work queue "
                    "to `<queue>.dlq`, with the original body and the x-* headers saying why."
                ),
                "messages": {
                    "DeadLetteredInvoiceReceived": {"$ref": "#/components/messages/DeadLetteredInvoiceReceived"},
                    "DeadLetteredInvoiceDetected": {"$ref": "#/components/messages/DeadLetteredInvoiceDetected"},
                    "DeadLetteredDelivery": {"$ref": "#/components/messages/DeadLetteredDelivery"},
                },
                "bindings": _exchange(DEAD_LETTER_EXCHANGE, "direct"),
            },
        },
        "operations": {
            "publishInvoiceReceived": {
                "action": "send",
                "title": "The mover publishes each invoice it moved, once confirmed moved",
                "channel": {"$ref": "#/channels/invoiceReceived"},
                "messages": [{"$ref": "#/channels/invoiceReceived/messages/InvoiceReceived"}],
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING}},
            },
            "publishDeadLetter": {
                "action": "send",
                "title": "A stage dead-letters a message it gave up on",
                "channel": {"$ref": "#/channels/deadLetters"},
                "messages": [
                    {"$ref": f"#/channels/deadLetters/messages/{name}"}
                    for name in ("DeadLetteredInvoiceReceived", "DeadLetteredInvoiceDetected", "DeadLetteredDelivery")
                ],
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING}},
            },
        },
        "components": {
            "messages": {
                "InvoiceReceived": _message(
                    "InvoiceReceived",
                    "An invoice is in its client's Incoming folder",
                    "AMQP type `InvoiceReceived`, message id = invoice_id, persistent.",
                    {"$ref": ref + "InvoiceReceived"},
                ),
                "DeadLetteredInvoiceReceived": _message(
                    "DeadLetteredInvoiceReceived",
                    "A notifier gave up (routing key notifier.email or notifier.pipeline)",
                    "The InvoiceReceived it could not e-mail or send to the pipeline.",
                    {"$ref": ref + "InvoiceReceived"},
                    headers=dead,
                ),
                "DeadLetteredInvoiceDetected": _message(
                    "DeadLetteredInvoiceDetected",
                    "The mover gave up (routing key mover)",
                    "The classifier's InvoiceDetected (an internal message: fields may change without notice).",
                    {"$ref": ref + "InvoiceDetected"},
                    headers=dead,
                ),
                "DeadLetteredDelivery": _message(
                    "DeadLetteredDelivery",
                    "The classifier gave up (routing key classifier)",
                    "DocSpace's webhook delivery, byte for byte as DocSpace sent it.",
                    {"type": "object", "description": "DocSpace's webhook body (see DocSpace's webhook docs)."},
                    headers=dead,
                ),
            },
            "schemas": {**_schemas(), "DeadLetterHeaders": DEAD_LETTER_HEADERS},
        },
    }


def invoice_received_schema() -> dict[str, Any]:
    schema = InvoiceReceived.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "invoice-received.schema.json", **schema}


def rendered() -> dict[Path, str]:
    header = "# Generated by `make contract` from shared/core/events.py and shared/broker/topology.py: do not edit.\n"
    return {
        ASYNCAPI: header + yaml.safe_dump(asyncapi(), sort_keys=False, width=120, allow_unicode=True),
        INVOICE_RECEIVED_SCHEMA: json.dumps(invoice_received_schema(), indent=2) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contract.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(HERE.parent)} is out of date: run `make contract`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
