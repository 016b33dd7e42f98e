"""SECRETS_AGENT_WATCH_INTERVAL: 0 is exec mode, 30 to 86400 seconds is supervise mode, and
anything else is 78 naming the variable, through the real entrypoint.

The 30 s floor protects the account's request quota: every check reads each loaded secret
again, and Parameter Store's default throughput (40 requests a second, shared by the account's
GetParameter, GetParameters and GetParametersByPath calls in a Region) is soon used up by a
fleet checking every second. A number so small that it reads as 0 (``1e-400``) is not a
spelling of exec mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import base_env, run_agent

VARIABLE = "SECRETS_AGENT_WATCH_INTERVAL"


@pytest.mark.parametrize(
    "value",
    ["0.001", "1e-400", "1", "29.99", "nan", "inf", "-inf", "-0.5", "86401", "1e9", "30s", " "],
)
def test_an_interval_outside_the_range_is_78_naming_the_variable(
    tmp_path: Path, value: str
) -> None:
    run = run_agent(tmp_path, base_env(None) | {VARIABLE: value}, timeout=30)
    assert run.returncode == 78, (run.returncode, run.stderr)
    assert not run.ran
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert VARIABLE in lines[0]
    assert "30" in lines[0]  # the floor is named


@pytest.mark.parametrize(("value", "supervised"), [("0", False), ("30", True), ("86400", True)])
def test_an_interval_in_range_runs_the_command(
    tmp_path: Path, value: str, supervised: bool
) -> None:
    env = base_env(None) | {VARIABLE: value, "SECRETS_AGENT_LOG_FORMAT": "json"}
    run = run_agent(tmp_path, env, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.ran
    assert ('"event":"supervising"' in run.stderr) is supervised
