"""Sections 1 and 2: the ingress against a minimal endpoint, and against a sample-style inline receiver."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench import wrk
from bench.payload import SECRET, delivery, signature
from bench.procs import Proc, delete_topology, wait_http
from ingress.settings import WEBHOOK_PATH
from simulator import DocSpaceSimulator
from standins.ports import free_port

WARMUP_SECONDS = 2


@contextmanager
def server(kind: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Proc]]:
    """``ingress`` (the product), ``minimal`` or ``sample`` on a free port; yields the webhook URL."""
    port = free_port()
    # The ingress answers its probes on an internal port; the baselines answer /readyz on their only one.
    probe_port = free_port() if kind == "ingress" else port
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    module = {"ingress": "ingress", "minimal": "bench.minimal_app", "sample": "bench.sample_receiver"}[kind]
    proc = Proc(
        f"{kind}-{port}",
        module,
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "METRICS_PORT": str(probe_port),
            # wrk sends one signed body over and over: with the replay memory on, every request after the first
            # would be answered as a replay without reaching the broker, and the run would measure nothing.
            "REPLAY_WINDOW_SECONDS": "0",
            "DOCSPACE_WEBHOOK_SECRET": SECRET,
            "TOPOLOGY_PREFIX": prefix,
            **(env or {}),
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", proc)
        yield base + WEBHOOK_PATH, proc
    finally:
        proc.stop()
        if kind == "ingress":
            delete_topology(prefix)


def measure(url: str, connections: int, seconds: float, body: bytes) -> wrk.LoadResult:
    sig = signature(body)
    wrk.run(url, body, sig, connections=connections, seconds=WARMUP_SECONDS)
    return wrk.run(url, body, sig, connections=connections, seconds=seconds)


def throughput(seconds: float, levels: tuple[int, ...] = (1, 16, 64)) -> dict[str, dict[int, wrk.LoadResult]]:
    """Section 1: each level measured on both servers back to back, in one run."""
    body = delivery()
    results: dict[str, dict[int, wrk.LoadResult]] = {"minimal": {}, "ingress": {}}
    for kind in ("minimal", "ingress"):
        with server(kind) as (url, _proc):
            for connections in levels:
                results[kind][connections] = measure(url, connections, seconds, body)
                time.sleep(0.5)
    return results


def against_docspace_latency(
    seconds: float, latencies: tuple[float, ...] = (0.02, 0.5), connections: int = 16
) -> dict[str, dict[float, wrk.LoadResult]]:
    """Section 2: our ingress and the sample-style receiver while DocSpace answers in 20 ms, then in 500 ms."""
    results: dict[str, dict[float, wrk.LoadResult]] = {"ingress": {}, "sample": {}}
    sim = DocSpaceSimulator(threads=64, move_delay=0.05).start()
    try:
        room = sim.create_room("Bench room")
        uploads = sim.create_folder(room, "Uploads")
        incoming = sim.create_folder(room, "Incoming")
        file_id = int(sim.upload_file(uploads, "Invoice-bench.pdf"))
        body = delivery(file_id)
        env = {"DOCSPACE_API_HOST": sim.base_url, "DOCSPACE_API_KEY": sim.api_key, "INCOMING_FOLDER_ID": incoming}
        for latency in latencies:
            sim.faults.clear()
            sim.faults.add(path="/api/*", latency=latency)
            for kind in ("ingress", "sample"):
                with server(kind, env) as (url, _proc):
                    results[kind][latency] = measure(url, connections, seconds, body)
    finally:
        sim.stop()
    return results
