"""A stalled log driver: stderr is a full pipe that nobody reads. In supervise mode the agent
still starts the command, forwards its signals and exits with its status: logging never blocks
the agent.

The pipe is filled before the agent starts, so every line the agent writes would block; the test
never reads it. The timeouts are generous bounds for a loaded machine, not measurements.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENTRYPOINT, ROOT, base_env
from tests.support.moto_server import MotoServer
from tests.support.supervised import wait_until


def run_with_stderr(env: dict[str, str], command: list[str], stderr: int) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), *command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd=str(ROOT),
        start_new_session=True,  # so that the cleanup can kill what a hung agent started
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def supervise_env(moto: MotoServer | None) -> dict[str, str]:
    env = base_env(moto.url if moto else None) | {
        "SECRETS_AGENT_WATCH_INTERVAL": "60",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    if moto is not None:
        env["PARAMETER_STORE_PREFIX"] = "/app/prod"
    return env


@pytest.mark.parametrize("loads", [False, True], ids=["plain-init", "ssm-prefix"])
def test_the_agent_exits_with_the_commands_status_when_stderr_is_blocked(
    full_pipe: int, tmp_path: Path, moto: MotoServer, boto_client: Any, loads: bool
) -> None:
    if loads:
        boto_client("ssm").put_parameter(Name="/app/prod/token", Value="t", Type="SecureString")
    started = tmp_path / "started"
    command = [
        sys.executable,
        "-c",
        "import os, sys, time; open(sys.argv[1], 'w').write(os.environ.get('TOKEN', '-'));"
        " time.sleep(0.5); sys.exit(7)",
        str(started),
    ]
    proc = run_with_stderr(supervise_env(moto if loads else None), command, full_pipe)
    try:
        assert proc.wait(timeout=30) == 7
        assert started.read_text() == ("t" if loads else "-")
    finally:
        stop(proc)


def test_signals_are_still_forwarded_when_stderr_is_blocked(
    full_pipe: int, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    command = [
        sys.executable,
        "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))\n"
        "open(sys.argv[1], 'w').close()\n"
        "time.sleep(60)\n",
        str(started),
    ]
    proc = run_with_stderr(supervise_env(None), command, full_pipe)
    try:
        wait_until(started.exists, timeout=30, what="the command to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 5
    finally:
        stop(proc)


def test_the_queue_drops_lines_past_its_capacity_and_never_blocks(full_pipe: int) -> None:
    from secrets_agent.output.logsink import QueuedStderr

    sink = QueuedStderr(full_pipe, capacity=3)
    for number in range(10):
        sink.write(f"line {number}\n")  # would block at once on the pipe itself
    sink.flush()
    # The writer holds one line (stuck in write), three wait, the rest were dropped.
    assert sink.dropped >= 6
    assert sink.drain(0.2) is False
