"""The one private pika method the publisher overrides is still there, still shaped the same, still used.

If a pika upgrade breaks any of these, the batching in ``shared/broker/frame_batching.py`` would silently stop working
(or break publishing): this test is the alarm.
"""

from __future__ import annotations

import inspect
import threading

import pika
import pika.connection
from pika.adapters.select_connection import SelectConnection

from shared.broker.frame_batching import BatchingConnection
from tests.support.real_broker import BrokerKit


def test_pika_still_has_the_method_with_the_same_signature() -> None:
    original = inspect.getattr_static(pika.connection.Connection, "_output_marshaled_frames")
    assert inspect.isfunction(original)
    assert list(inspect.signature(original).parameters) == ["self", "marshaled_frames"]
    # SelectConnection does not override it in between, so BatchingConnection's override is the one pika calls.
    assert SelectConnection._output_marshaled_frames is original
    assert "_output_marshaled_frames" in vars(BatchingConnection)


def test_every_frame_of_a_publish_passes_through_it_and_arrives_in_order(broker: BrokerKit) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    held: list[int] = []
    done = threading.Event()
    connection: BatchingConnection  # built below, once the callbacks it calls exist

    def on_channel(channel: pika.channel.Channel) -> None:
        with connection.one_write():
            for n in range(3):
                channel.basic_publish(broker.topology.events_exchange, "file.created", f"m{n}".encode())
            held.append(connection.held_frames)
        held.append(connection.held_frames)
        # A round trip to the broker: once it answers, the batch written above has been read before it.
        channel.basic_qos(prefetch_count=1, callback=lambda _frame: connection.close())

    def on_open(conn: pika.connection.Connection) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_close(_conn: pika.connection.Connection, _reason: Exception) -> None:
        done.set()
        connection.ioloop.stop()

    connection = BatchingConnection(
        pika.URLParameters(broker.url), on_open_callback=on_open, on_close_callback=on_close
    )
    timer = threading.Timer(10, lambda: connection.ioloop.add_callback_threadsafe(connection.ioloop.stop))
    timer.start()
    try:
        connection.ioloop.start()
    finally:
        timer.cancel()
    assert done.is_set(), "the connection did not finish within 10 s"
    # Three frames per message (method, header, body) were held inside the block, none after it.
    assert held == [9, 0]
    assert [body for _props, body in broker.get_all(probe)] == [b"m0", b"m1", b"m2"]
