"""What a careless operator can do, and the exit code that says so: a blank or impossible
prefix (78), a prefix whose secrets give no variable (66).

Black-box: the real entrypoint and ``python -m agent`` against a moto server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


# -- item: a Secrets Manager prefix that gives no variable finds nothing -------------------


def test_a_prefix_whose_only_secret_is_an_empty_object_is_66(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("secretsmanager").create_secret(Name="app/prod/config", SecretString="{}")
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app/prod"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 66, run.stderr
    assert not run.ran
    line = run.stderr.splitlines()[-1]
    assert line.startswith("secrets-agent: not found: ")
    assert "'app/prod'" in line and "empty JSON object" in line
    check = run_agent(tmp_path, env, ["check"])
    assert check.returncode == 66 and check.stdout == ""


def test_an_empty_object_beside_other_secrets_contributes_nothing(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/prod/config", SecretString="{}")
    sm.create_secret(Name="app/prod/db", SecretString=json.dumps({"password": "pw"}))
    run = run_agent(tmp_path, base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app/prod"})
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["DB_PASSWORD"] == "pw"
    assert not any(k.startswith("CONFIG") for k in run.child_env)
