"""Black-box: SSM references in the environment, against a real moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_env, refused, run_agent, started
from tests.support.logs import events
from tests.support.moto_server import MotoServer
from tests.support.seed import put, put_all

ACCOUNT = "123456789012"  # moto's default account


def aws_calls(stderr: str) -> list[dict[str, Any]]:
    return events(stderr, "aws call")


def test_every_ssm_reference_form(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    put(ssm, "/app/db/password", "v1")
    put(ssm, "/app/db/password", "v2")
    ssm.label_parameter_version(Name="/app/db/password", ParameterVersion=1, Labels=["stable"])
    put(ssm, "kptboard-rails.secret.key.base", "flat")
    boto_client("ssm", "eu-west-1").put_parameter(
        Name="/other/region", Value="from-eu", Type="SecureString"
    )
    boto_client("ssm", "cn-north-1").put_parameter(
        Name="/china/key", Value="from-cn", Type="SecureString"
    )
    env = base_env(moto.url) | {
        "LATEST": "ssm:/app/db/password",
        "PINNED": "ssm:/app/db/password:1",
        "LABELLED": "ssm:/app/db/password:stable",
        "FLAT": "ssm:kptboard-rails.secret.key.base",
        "BY_ARN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/db/password",
        "FLAT_ARN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/kptboard-rails.secret.key.base",
        "OTHER_REGION": f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/other/region",
        "CHINA": f"arn:aws-cn:ssm:cn-north-1:{ACCOUNT}:parameter/china/key",
        "UNRELATED": "arn:aws:s3:::bucket/key",
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    got = run.child_env
    assert got is not None
    assert got["LATEST"] == "v2"
    assert got["PINNED"] == "v1"
    assert got["LABELLED"] == "v1"
    assert got["FLAT"] == "flat"
    assert got["BY_ARN"] == "v2"
    assert got["FLAT_ARN"] == "flat"
    assert got["OTHER_REGION"] == "from-eu"
    assert got["CHINA"] == "from-cn"
    assert got["UNRELATED"] == "arn:aws:s3:::bucket/key"


def test_twenty_references_take_at_most_two_calls(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    env = base_env(moto.url) | {"SECRETS_AGENT_LOG_LEVEL": "debug"}
    for i in range(20):
        put(ssm, f"/app/ref/{i}", f"value-{i}")
        env[f"REF_{i}"] = f"ssm:/app/ref/{i}"
    run = run_agent(tmp_path, env)
    child = started(run)
    assert all(child[f"REF_{i}"] == f"value-{i}" for i in range(20))
    calls = aws_calls(run.stderr)
    assert 1 <= len(calls) <= 2
    assert {c["operation"] for c in calls} == {"GetParameters"}
    assert all(len(c["params"]["Names"]) <= 10 for c in calls)


def test_same_parameter_twice_is_read_once(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client("ssm"), "/app/shared", "same")
    env = base_env(moto.url) | {
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "A": "ssm:/app/shared",
        "B": "ssm:/app/shared",
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["A"] == run.child_env["B"] == "same"
    calls = aws_calls(run.stderr)
    assert len(calls) == 1 and calls[0]["params"]["Names"] == ["/app/shared"]


@pytest.mark.parametrize(
    "missing",
    ["ssm:/app/missing", "ssm:/app/present:7", "ssm:/app/present:nolabel"],
)
def test_missing_reference_is_66_and_nothing_runs(
    tmp_path: Path, moto: MotoServer, boto_client: Any, missing: str
) -> None:
    put(boto_client("ssm"), "/app/present", "present-canary")
    env = base_env(moto.url) | {"GOOD": "ssm:/app/present", "BAD": missing}
    run = run_agent(tmp_path, env)
    assert run.returncode == 66, run.stderr
    assert not run.ran
    assert missing.split(":")[1] in run.stderr
    assert "present-canary" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_reference_into_protected_name_is_65(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"LD_PRELOAD": "ssm:/x"}
    run = run_agent(tmp_path, env)
    # Not refused(): the dynamic loader itself complains about LD_PRELOAD on stderr too.
    assert run.returncode == 65
    assert "LD_PRELOAD" in run.stderr
    assert not run.ran


def test_malformed_reference_is_65_never_passed_literally(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"BROKEN": "ssm:has spaces in it"}
    refused(run_agent(tmp_path, env), 65, "BROKEN")


def test_reference_and_prefix_together(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    put_all(
        ssm,
        {
            "/app/database_url": "from-prefix",
            "/pinned/database_url": "from-reference",
            "/app/api_key": "key",
        },
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "DATABASE_URL": "ssm:/pinned/database_url",
    }
    run = run_agent(tmp_path, env)
    child = started(run)
    # A reference is the variable's own, explicit source: it wins over a prefix value of the
    # same name, with or without SECRETS_AGENT_OVERRIDE (which is about plain inherited values).
    assert child["DATABASE_URL"] == "from-reference"
    assert child["API_KEY"] == "key"
    env["SECRETS_AGENT_OVERRIDE"] = "true"
    run = run_agent(tmp_path, env)
    assert run.child_env is not None and run.child_env["DATABASE_URL"] == "from-reference"
    check = run_agent(tmp_path, env, ["check"])
    assert any(line.split()[:2] == ["DATABASE_URL", "ssm"] for line in check.stdout.splitlines()), (
        check.stdout
    )
    for line in check.stdout.splitlines():
        assert "ssm:" not in line.split()[0]
