"""What a careless operator can do, and the exit code that says so: a blank or impossible
prefix (78), a prefix whose secrets give no variable (66), a full disk under ``env`` or
``check`` (74), a value that is not UTF-8 under a strict stdout (its bytes, not a crash).

Black-box: the real entrypoint and ``python -m secrets_agent`` against a moto server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ENTRYPOINT,
    REPORT_ENV,
    ROOT,
    AgentRun,
    base_env,
    error_lines,
    refused,
    run_agent,
)
from tests.support.moto_server import MotoServer


def one_error_line(run: AgentRun) -> str:
    assert len(run.stderr.splitlines()) == 1, run.stderr
    lines = error_lines(run.stderr)
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
    line = refused(run_agent(tmp_path, env), 66)
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


# -- item: output failures are I/O errors, not bugs -----------------------------------------


def run_to(path: str, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[bytes]:
    with open(path, "wb") as out:
        return subprocess.run(
            [sys.executable, "-m", "secrets_agent", *args],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            cwd=str(ROOT),
            timeout=60,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["env"],
        ["env", "--reveal", "--format", "json"],
        ["check"],
        ["iam-policy", "--format", "terraform"],
    ],
)
def test_writing_to_a_full_disk_is_74_with_one_line(
    moto: MotoServer, boto_client: Any, args: list[str]
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/db_url", Value="v", Type="SecureString")
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_LOG_LEVEL": "error",
    }
    proc = run_to("/dev/full", env, args)
    stderr = proc.stderr.decode()
    assert proc.returncode == 74, stderr
    assert len(stderr.splitlines()) == 1, stderr
    lines = error_lines(stderr)
    assert lines[0].startswith("secrets-agent: I/O error: ")
    assert "stdout" in lines[0] and "ENOSPC" in lines[0]
    assert "internal error" not in stderr


def test_a_value_from_non_utf8_bytes_under_a_strict_stdout_prints_its_bytes(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    # A JSON "\udcff" escape in a parameter: Python holds it as the lone surrogate that stands
    # for byte 0xff (surrogateescape), and the command receives the byte 0xff.
    boto_client("ssm").put_parameter(
        Name="/app/prod/legacy", Value="ab\udcffcd", Type="SecureString"
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "PYTHONIOENCODING": "utf-8:strict",
        "SECRETS_AGENT_LOG_LEVEL": "error",
    }
    out = tmp_path / "out"
    outputs = {}
    for fmt in ("dotenv", "shell", "json"):
        proc = run_to(str(out), env, ["env", "--reveal", "--format", fmt])
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stderr == b""
        outputs[fmt] = out.read_bytes()
    assert outputs["dotenv"] == b'LEGACY="ab\xffcd"\n'
    assert outputs["shell"] == b"export LEGACY='ab\xffcd'\n"
    # JSON must stay UTF-8: the lone surrogate is written as its escape, which reads back.
    assert json.loads(outputs["json"].decode("utf-8")) == {"LEGACY": "ab\udcffcd"}
    # And it is what the command receives.
    child = tmp_path / "child.json"
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), sys.executable, str(REPORT_ENV), str(child)],
        env=env,
        capture_output=True,
        cwd=str(ROOT),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(child.read_bytes().decode("utf-8", "surrogateescape"))["LEGACY"]
    assert raw.encode("utf-8", "surrogateescape") == b"ab\xffcd"
