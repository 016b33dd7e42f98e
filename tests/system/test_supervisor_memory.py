"""Supervise mode keeps the AWS SDK out of the supervising process: the first resolution and
each check run in a short-lived process of their own (``secrets_agent.supervise.isolated``), which
the supervisor
bounds by SECRETS_AGENT_TIMEOUT. The memory figures themselves are in
bench/supervisor_memory.py, not here."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_env
from tests.support.moto_server import MotoServer
from tests.support.supervised import Fleet, children, wait_until


def mapped_files(pid: int) -> set[str]:
    files = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            files.add(parts[5])
    return files


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    yield f
    f.close()


@pytest.fixture
def seeded(moto: MotoServer, boto_client: Any) -> dict[str, str]:
    ssm = boto_client("ssm")
    for i in range(3):
        ssm.put_parameter(Name=f"/mem/prod/value_{i}", Value=f"v{i}-secret", Type="SecureString")
    boto_client("secretsmanager").create_secret(
        Name="mem/prod/db", SecretString=json.dumps({"password": "pw-secret"})
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/mem/prod",
        "SECRETS_MANAGER_PREFIX": "mem/prod",
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    return env


def test_the_supervising_process_never_loads_the_aws_sdk(
    fleet: Fleet, seeded: dict[str, str]
) -> None:
    sup = fleet.start(seeded, "VALUE_0")
    assert "env VALUE_0=v0-secret" in sup.lines()
    wait_until(lambda: len(sup.events("secrets checked")) >= 2, timeout=30, what="two checks")
    (supervising,) = sup.events("supervising")
    assert supervising["aws_sdk_loaded"] is False
    # botocore's HTTP stack (urllib3) loads the ssl module: its extension is never mapped here.
    assert not [f for f in mapped_files(sup.pid) if "_ssl" in f or "botocore" in f]
    # Each check was a process of its own, reaped and not logged as an orphan.
    checks = [e for e in sup.events("check process") if e["kind"] == "check"]
    assert len(checks) >= 2
    assert {e["status"] for e in checks} == {0}
    assert len({e["pid"] for e in checks}) == len(checks)
    assert not {e["pid"] for e in checks} & {e["pid"] for e in sup.events("orphan reaped")}
    assert "v0-secret" not in sup.stderr()


def test_a_check_process_that_hangs_is_killed_and_the_command_kept(
    fleet: Fleet, seeded: dict[str, str]
) -> None:
    env = dict(seeded, SECRETS_AGENT_TIMEOUT="2")
    sup = fleet.start(env, "VALUE_0")
    stopped: list[int] = []

    def stop_a_check() -> bool:
        for pid in children(sup.pid):
            argv = cmdline(pid)
            if b"secrets_agent.supervise.check_process" in argv:
                assert b"-secret" not in argv  # values cross a pipe, never argv
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                return True
        return False

    wait_until(stop_a_check, timeout=30, what="a check process")
    wait_until(
        lambda: any(
            "its process was killed" in e["error"]
            for e in sup.events("secrets check failed; command kept")
        ),
        timeout=30,
        what="the hung check to fail",
    )
    assert stopped[0] not in children(sup.pid)  # killed and reaped
    # The command still runs, unrestarted, and later checks work again.
    assert sup.proc.poll() is None
    checked = len(sup.events("secrets checked"))
    wait_until(
        lambda: len(sup.events("secrets checked")) > checked,
        timeout=30,
        what="a later check that succeeds",
    )
    assert len([line for line in sup.lines() if line.startswith("ready")]) == 1
