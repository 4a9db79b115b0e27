"""``DocSpaceClient`` with its limiter against the simulator enforcing DocSpace's limits: it stays under them."""

from __future__ import annotations

import threading
import time

from shared.docspace.client import DocSpaceClient
from shared.limits.rate_limit import KeyLimits, RateLimiter
from simulator import DocSpaceSimulator


def _client(sim: DocSpaceSimulator, limiter: RateLimiter | None) -> DocSpaceClient:
    return DocSpaceClient(
        sim.base_url, sim.api_key, move_deadline=5.0, poll_interval=0.05, poll_max_interval=0.2, limiter=limiter
    )


def _move_in_parallel(sim: DocSpaceSimulator, client: DocSpaceClient, count: int) -> list[BaseException]:
    room = sim.create_room("Client A")
    uploads = sim.create_folder(room, "Uploads")
    incoming = sim.create_folder(room, "Incoming")
    files = [sim.upload_file(uploads, f"Invoice-{i}.pdf") for i in range(count)]
    errors: list[BaseException] = []

    def move(file_id: str) -> None:
        try:
            client.move_file(file_id, incoming)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_concurrent_writes_stay_under_the_portals_limit(docspace_sim: DocSpaceSimulator) -> None:
    docspace_sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=2, retry_after=1)
    docspace_sim.faults.add(method="PUT", path="/api/2.0/files/fileops/move", latency=0.2)
    with _client(docspace_sim, RateLimiter(KeyLimits(1400, 2))) as client:
        assert _move_in_parallel(docspace_sim, client, 6) == []
    assert docspace_sim.call_count("PUT", "/api/2.0/files/fileops/move") == 6  # not one 429


def test_without_the_limiter_the_same_load_draws_429s(docspace_sim: DocSpaceSimulator) -> None:
    docspace_sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=2, retry_after=1)
    docspace_sim.faults.add(method="PUT", path="/api/2.0/files/fileops/move", latency=0.2)
    with _client(docspace_sim, None) as client:
        _move_in_parallel(docspace_sim, client, 6)
    assert docspace_sim.call_count("PUT", "/api/2.0/files/fileops/move") > 6


def test_a_429_holds_back_every_thread_of_the_process(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("Client A")
    first, second = (docspace_sim.upload_file(room, f"Invoice-{i}.pdf") for i in range(2))
    docspace_sim.faults.add(method="GET", path=f"/api/2.0/files/file/{first}", latency=0.1, burst_429=1, retry_after=1)
    with _client(docspace_sim, RateLimiter(KeyLimits(1400, 12))) as client:
        one = threading.Thread(target=client.get_file, args=(first,))
        one.start()
        time.sleep(0.3)  # the first call has had its 429 by now
        started = time.monotonic()
        client.get_file(second)
        waited = time.monotonic() - started
        one.join(10)
    assert waited >= 0.5  # it waited out the other thread's Retry-After instead of adding to the pressure
