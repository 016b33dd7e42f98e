"""The entrypoint with stdout or stderr closed (``cmd >&-``, some process managers): the command
still starts, as it would under a shell or tini, and failures are still one exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENTRYPOINT, ROOT, base_env, error_line


def _run(tmp_path: Path, closed: tuple[int, ...], extra: dict[str, str], argv: list[str]) -> int:
    def close() -> None:
        for fd in closed:
            os.close(fd)

    env = base_env(None) | extra
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), *argv],
        env=env,
        cwd=str(ROOT),
        preexec_fn=close,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    return proc.returncode


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2)], ids=["stdout", "stderr", "both"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"SECRETS_AGENT_LOG_LEVEL": "debug"}],
    ids=["fast-path", "secrets_agent"],
)
def test_the_command_starts_with_a_closed_stream(
    tmp_path: Path, closed: tuple[int, ...], extra: dict[str, str]
) -> None:
    marker = tmp_path / "ran"
    code = _run(tmp_path, closed, extra, ["sh", "-c", f"echo ran > {marker}"])
    assert code == 0
    assert marker.read_text() == "ran\n"


@pytest.mark.parametrize("closed", [(1,), (2,)], ids=["stdout", "stderr"])
def test_a_failure_keeps_its_exit_code_with_a_closed_stream(
    tmp_path: Path, closed: tuple[int, ...]
) -> None:
    extra = {"SECRETS_AGENT_TIMEOUT": "-1"}
    assert _run(tmp_path, closed, extra, ["true"]) == 78
    assert _run(tmp_path, closed, {}, ["/nonexistent/command"]) == 127


@pytest.mark.parametrize(
    ("args", "closed"),
    [
        (["env"], 1),
        (["check"], 1),
        (["iam-policy"], 1),
        (["encrypt", "--key-id", "arn:aws:kms:us-east-1:123456789012:key/k", "--name", "A"], 0),
    ],
    ids=["env", "check", "iam-policy", "encrypt-stdin"],
)
def test_a_subcommand_whose_stream_is_closed_fails_with_one_line(
    tmp_path: Path, args: list[str], closed: int
) -> None:
    def close() -> None:
        os.close(closed)

    proc = subprocess.run(
        [sys.executable, "-m", "secrets_agent", *args],
        env=base_env(None),
        cwd=str(ROOT),
        preexec_fn=close,
        stdin=None if closed == 0 else subprocess.DEVNULL,
        stdout=None if closed == 1 else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 64, stderr
    assert error_line(stderr).startswith("secrets-agent: usage: "), stderr
    assert "Traceback" not in stderr
