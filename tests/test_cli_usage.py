"""Usage errors through the real CLI: exit 64 and one stderr line saying what to do."""

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
