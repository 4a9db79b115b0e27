"""AMQP_URL with several nodes: one set of connection parameters per node, a random start, secrets kept."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from shared.broker.connection import connection_parameters, node_names
from shared.config.settings import CommonSettings

CLUSTER = "amqp://app:s3cr%2Ct@rmq-1:5672/%2F, amqp://app:s3cr%2Ct@rmq-2:5672/%2F,amqp://app:s3cr%2Ct@rmq-3:5672/%2F"


def test_one_set_of_parameters_per_node_each_with_the_processs_settings() -> None:
    nodes = connection_parameters(CLUSTER, name="mover", heartbeat=7, rng=random.Random(1))
    assert sorted(node.host for node in nodes) == ["rmq-1", "rmq-2", "rmq-3"]
    for node in nodes:
        assert node.heartbeat == 7
        assert node.connection_attempts == 1  # a dead node costs one refused connect, then the next node
        assert node.credentials.password == "s3cr,t"  # a comma inside a password is written %2C
        assert node.client_properties == {"connection_name": "mover"}


def test_processes_start_at_different_nodes_and_keep_the_order_after_it() -> None:
    starts = {connection_parameters(CLUSTER, name="x", rng=random.Random(seed))[0].host for seed in range(30)}
    assert starts == {"rmq-1", "rmq-2", "rmq-3"}  # connections spread over the cluster
    for seed in range(10):
        hosts = [node.host for node in connection_parameters(CLUSTER, name="x", rng=random.Random(seed))]
        i = hosts.index("rmq-1")
        assert hosts[i:] + hosts[:i] == ["rmq-1", "rmq-2", "rmq-3"]


def test_one_url_is_one_node() -> None:
    [node] = connection_parameters("amqp://guest:guest@localhost:5672/%2F", name="x")
    assert node_names([node]) == "localhost:5672"


def test_node_names_never_show_credentials() -> None:
    shown = node_names(connection_parameters(CLUSTER, name="x"))
    assert "s3cr" not in shown and "app" not in shown
    assert set(shown.split(", ")) == {"rmq-1:5672", "rmq-2:5672", "rmq-3:5672"}


@pytest.mark.parametrize(
    "value",
    [
        "amqp://app:s3cret@rmq-1/%2F,http://app:s3cret@rmq-2/",  # one node that is no AMQP URL
        "rmq-1:5672,rmq-2:5672",  # host names without a scheme
        " , ",  # no node at all
    ],
)
def test_a_bad_amqp_url_is_refused_without_echoing_it(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", value)
    with pytest.raises(ValidationError) as refused:
        CommonSettings()
    assert "AMQP_URL" in str(refused.value)
    assert "s3cret" not in str(refused.value) and "rmq-" not in str(refused.value)
