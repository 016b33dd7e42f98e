"""Odd command lines through the real CLI: the right exit code and one stderr line."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_env, error_line, run_agent


@pytest.mark.parametrize(
    "args",
    [[], ["bogus"], ["check", "extra"], ["env", "--format", "xml"], ["encrypt"], ["exec", "-x"]],
    ids=["nothing", "unknown", "extra-argument", "bad-choice", "missing-option", "exec-option"],
)
def test_a_usage_error_is_64_and_one_line(tmp_path: Path, args: list[str]) -> None:
    run = run_agent(tmp_path, base_env(None), args)
    assert run.returncode == 64
    assert len(run.stderr.splitlines()) == 1, run.stderr
    line = error_line(run.stderr)
    assert line.startswith("secrets-agent: usage: ")
    assert "--help" in line
    assert run.stdout == ""


@pytest.mark.parametrize(
    "extra", [{}, {"SECRETS_AGENT_LOG_LEVEL": "error"}], ids=["fast-path", "secrets_agent"]
)
def test_an_empty_command_name_is_127_as_in_a_shell(tmp_path: Path, extra: dict[str, str]) -> None:
    run = run_agent(tmp_path, base_env(None) | extra, command=["", "arg"])
    assert run.returncode == 127
    assert len(run.stderr.splitlines()) == 1
    assert error_line(run.stderr).startswith("secrets-agent: command not found: "), run.stderr


def test_an_interrupt_is_one_line_and_130(tmp_path: Path) -> None:
    """^C while encrypt waits for its plaintext (or at any point before a command starts)."""
    args = ["encrypt", "--key-id", "arn:aws:kms:us-east-1:123456789012:key/k", "--name", "A"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "secrets_agent", *args],
        env=base_env(None),
        cwd=str(ROOT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)  # reading stdin by then; earlier would need the same answer
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert error_line(stderr).startswith("secrets-agent: interrupted by signal 2"), stderr
    assert out == b""


def test_end_of_input_at_the_encrypt_prompt_is_one_line_and_64() -> None:
    """^D at the terminal prompt of encrypt (getpass raises EOFError)."""
    key = "arn:aws:kms:us-east-1:1:key/k"
    argv = [sys.executable, "-m", "secrets_agent", "encrypt", "--key-id", key]
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(ROOT)
        os.execve(sys.executable, [*argv, "--name", "A"], base_env(None))
    seen = b""
    deadline = time.monotonic() + 30
    while b"not echoed" not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            seen += os.read(fd, 4096)
    os.write(fd, b"\x04")
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    _, status = os.waitpid(pid, 0)
    text = seen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 64, text
    assert "Traceback" not in text
    assert "secrets-agent: usage: " in text


_BUG = """
import sys
from secrets_agent import cli


def broken() -> int:
    raise RuntimeError("value-canary-0f3a in a message")


sys.exit(cli.error_boundary(broken))
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_unexpected_exception_is_one_line_70_without_its_message(
    tmp_path: Path, fmt: str
) -> None:
    """A bug's message may quote data: the agent's error boundary prints its type and place,
    never the message. The bug is raised inside the boundary in a process of its own."""
    env = base_env(None) | {"SECRETS_AGENT_LOG_FORMAT": fmt, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _BUG], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 70, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert "internal error: RuntimeError at <string>:" in error_line(run.stderr)
    assert "value-canary-0f3a" not in run.stderr + run.stdout
