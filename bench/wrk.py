"""Drives ``wrk`` (C, one thread, closed loop, keep-alive) and reads its throughput and latency percentiles.

wrk is used instead of a Python client because on a 2-core machine the load generator must not eat the CPU the
server under test needs: one wrk thread sustains tens of thousands of requests/s on a fraction of a core.
Install it with ``apt-get install -y wrk`` (Debian/Ubuntu) or ``brew install wrk`` (macOS).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "the benchmark needs wrk: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk (macOS)"

_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["x-docspace-signature-256"] = os.getenv("BENCH_SIG")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured: requests, errors and latency percentiles."""

    requests: int
    seconds: float
    errors: int  # non-2xx/3xx answers, connect/read/write errors and timeouts
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, body: bytes, signature: str, *, connections: int, seconds: float, timeout: float = 10) -> LoadResult:
    """One closed-loop run: ``connections`` keep-alive connections, each sending the next request on an answer."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT, encoding="utf-8")
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(int(seconds), 1)}s",
            f"--timeout={int(timeout)}s",
            "-s",
            str(script),
            url,
        ]
        env = {"BENCH_BODY": str(body_file), "BENCH_SIG": signature, "PATH": "/usr/bin:/bin:/usr/local/bin"}
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
    doc = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(doc[k] for k in ("status", "connect", "read", "write", "timeout"))
    return LoadResult(
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        errors=errors,
        p50_ms=doc["p50_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
    )
