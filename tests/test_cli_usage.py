"""Odd command lines through the real CLI: the right exit code and one stderr line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import base_env, run_agent


@pytest.mark.parametrize(
    "args",
    [[], ["bogus"], ["check", "extra"], ["env", "--format", "xml"], ["encrypt"], ["exec", "-x"]],
    ids=["nothing", "unknown", "extra-argument", "bad-choice", "missing-option", "exec-option"],
)
def test_a_usage_error_is_64_and_one_line(tmp_path: Path, args: list[str]) -> None:
    run = run_agent(tmp_path, base_env(None), args)
    assert run.returncode == 64
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("secrets-agent: usage: ")
    assert "--help" in lines[0]
    assert run.stdout == ""


@pytest.mark.parametrize(
    "extra", [{}, {"SECRETS_AGENT_LOG_LEVEL": "error"}], ids=["fast-path", "agent"]
)
def test_an_empty_command_name_is_127_as_in_a_shell(tmp_path: Path, extra: dict[str, str]) -> None:
    run = run_agent(tmp_path, base_env(None) | extra, command=["", "arg"])
    assert run.returncode == 127
    assert run.stderr.startswith("secrets-agent: command not found: "), run.stderr
    assert len(run.stderr.splitlines()) == 1
