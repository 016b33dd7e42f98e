"""What a careless operator can do, and the exit code that says so: a blank or impossible
prefix (78).

Black-box: the real entrypoint and ``python -m agent`` against a moto server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AgentRun, base_env, run_agent
from tests.moto_server import MotoServer


def one_error_line(run: AgentRun) -> str:
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("secrets-agent: ")
    return lines[0]


# -- item: a blank prefix is not "unset", an impossible one is a configuration error -------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARAMETER_STORE_PREFIX", " "),
        ("PARAMETER_STORE_PREFIX", "\t "),
        ("PARAMETER_STORE_PREFIX", "\u00a0"),  # a no-break space pasted from a document
        ("SECRETS_MANAGER_PREFIX", "  "),
        ("SECRETS_MANAGER_PREFIX", "\u00a0"),
    ],
)
def test_a_blank_prefix_is_78_naming_the_variable(
    tmp_path: Path, moto: MotoServer, variable: str, value: str
) -> None:
    run = run_agent(tmp_path, base_env(moto.url) | {variable: value})
    assert run.returncode == 78, run.stderr
    assert not run.ran
    line = one_error_line(run)
    assert variable in line and "whitespace" in line


@pytest.mark.parametrize("variable", ["PARAMETER_STORE_PREFIX", "SECRETS_MANAGER_PREFIX"])
def test_an_empty_prefix_is_still_unset(tmp_path: Path, variable: str) -> None:
    run = run_agent(tmp_path, base_env(None) | {variable: ""})
    assert run.returncode == 0, run.stderr
    assert run.ran


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PARAMETER_STORE_PREFIX", "/" + "a" * 2100, "2048"),
        ("PARAMETER_STORE_PREFIX", "a" * 2100, "2048"),
        ("PARAMETER_STORE_PREFIX", "".join(f"/level{i}" for i in range(16)), "15"),
        ("SECRETS_MANAGER_PREFIX", "app/" + "a" * 600, "512"),
    ],
)
def test_a_prefix_longer_or_deeper_than_aws_allows_is_78(
    tmp_path: Path, moto: MotoServer, variable: str, value: str, says: str
) -> None:
    run = run_agent(tmp_path, base_env(moto.url) | {variable: value})
    assert run.returncode == 78, run.stderr
    assert not run.ran
    line = one_error_line(run)
    assert variable in line and says in line
