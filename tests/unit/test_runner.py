"""The one process runner: a bad setting exits 2 in a clear line, every part closes, SIGTERM stops the process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared.runtime.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_TOPOLOGY, RESTART_CANNOT_HELP
from shared.runtime.runner import ConfigError, Runtime, configuration

ROOT = Path(__file__).resolve().parents[2]
MISPLACED = "misplaced-secret-0123456789"

# A process as an entry point writes one: real settings, real runner, parts that say when they close.
_PROGRAM = """
import sys

from shared.broker.connection import TopologyMismatch
from shared.config.settings import CommonSettings
from shared.runtime.runner import ConfigError, run_process

mode = sys.argv[1]


class Part:
    def __init__(self, name: str, fails: bool = False) -> None:
        self.name, self.fails = name, fails

    def close(self) -> None:
        print("closed", self.name, flush=True)
        if self.fails:
            raise OSError("the disk went away")


def body(runtime, settings):
    runtime.closing(Part("first"))
    runtime.closing(Part("second", fails=mode == "close-fails"))
    runtime.closing(Part("third"))
    if mode == "config":
        raise ConfigError("cannot open the spool in /srv/spool: it is a file")
    if mode == "topology":
        raise TopologyMismatch("the broker refused the topology: give the changed queue a new name")
    if mode == "signal":
        called = []  # no print inside the signal handler: it may interrupt a print in progress
        runtime.on_stop(lambda: called.append("stop callback"))
        print("ready", flush=True)
        runtime.stopping.wait(20)
        print(*called, flush=True)
    return 0


sys.exit(run_process("probe", CommonSettings, body))
"""


def _start(mode: str, **env: str) -> subprocess.Popen[str]:
    base = {key: os.environ[key] for key in ("PATH", "HOME", "SYSTEMROOT") if key in os.environ}
    return subprocess.Popen(
        [sys.executable, "-c", _PROGRAM, mode],
        cwd=ROOT,
        env={**base, "LOG_FORMAT": "json", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(mode: str, **env: str) -> tuple[int, list[str], str]:
    process = _start(mode, **env)
    out, err = process.communicate(timeout=30)
    return process.returncode, out.splitlines(), err


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_bad_setting_exits_2_with_one_line_naming_it_and_not_its_value() -> None:
    code, out, err = _run("ok", HEARTBEAT=MISPLACED)
    assert code == EXIT_CONFIG
    assert err.splitlines()[0] == "probe: invalid configuration:"
    assert err.splitlines()[1].startswith("  HEARTBEAT: ")
    assert MISPLACED not in err
    assert out == []  # nothing was started, so nothing is closed


def test_a_config_error_raised_while_starting_exits_2_after_closing_what_was_opened() -> None:
    code, out, err = _run("config")
    assert code == EXIT_CONFIG
    assert "probe: cannot open the spool in /srv/spool: it is a file" in err.splitlines()
    assert out == ["closed third", "closed second", "closed first"]


def test_a_part_that_fails_to_close_does_not_stop_the_others_closing_and_the_exit_is_1() -> None:
    code, out, err = _run("close-fails")
    assert out == ["closed third", "closed second", "closed first"]
    [failed] = [event for event in _events(err) if event["event"] == "close_failed"]
    assert "Part.close" in str(failed["part"]) and "the disk went away" in str(failed["error"])
    assert code == EXIT_FAILED


def test_a_topology_mismatch_exits_3_with_the_broker_s_words() -> None:
    code, out, err = _run("topology")
    assert code == EXIT_TOPOLOGY
    [mismatch] = [event for event in _events(err) if event["event"] == "topology_mismatch"]
    assert "new name" in str(mismatch["error"])
    assert out == ["closed third", "closed second", "closed first"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_runs_the_stop_callbacks_and_the_process_exits_0_after_closing(signum: int) -> None:
    process = _start("signal")
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_OK, err
    assert out.splitlines() == ["stop callback", "closed third", "closed second", "closed first"]
    [stopping] = [event for event in _events(err) if event["event"] == "stopping"]
    assert stopping["signal"] == signal.Signals(signum).name


def test_a_stop_callback_registered_after_the_signal_runs_at_once() -> None:
    runtime = Runtime("probe")
    runtime.stop()
    called: list[str] = []
    runtime.on_stop(lambda: called.append("stopped"))
    assert runtime.stopping.is_set() and called == ["stopped"]


def test_configuration_turns_the_named_errors_into_a_config_error_and_lets_others_through() -> None:
    def bad_rules() -> None:
        raise ValueError("clients[0].room_id: not a number")

    with pytest.raises(ConfigError, match=r"invalid configuration:\n  clients\[0\]\.room_id: not a number"):
        configuration(bad_rules, ValueError)
    with pytest.raises(ValueError, match="room_id"):
        configuration(bad_rules, KeyError)


def test_a_supervisor_does_not_restart_what_a_restart_cannot_fix() -> None:
    assert {EXIT_CONFIG, EXIT_TOPOLOGY} == RESTART_CANNOT_HELP
    assert EXIT_FAILED not in RESTART_CANNOT_HELP
