"""``secrets-agent check`` says what one change check costs in AWS calls, and it is what a
supervisor's checks really send: counted by a proxy in front of moto over several checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import base_env, run_agent
from tests.support.fault_proxy import FaultProxy
from tests.support.logs import one_event
from tests.support.moto_server import MotoServer
from tests.support.seed import put
from tests.support.supervised import Fleet, checking_every_second, wait_until


def _cost(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """What ``check`` (in JSON log format) says one change check costs."""
    run = run_agent(tmp_path, env | {"SECRETS_AGENT_LOG_FORMAT": "json"}, ["check"])
    assert run.returncode == 0, run.stderr
    return one_event(run.stderr, "one change check costs")


def test_check_states_the_calls_of_one_change_check(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    ssm = boto_client("ssm")
    for i in range(30):
        ssm.put_parameter(Name=f"/app/prod/p{i:02d}", Value=f"v{i}", Type="SecureString")
    ssm.put_parameter(Name="/shared/token", Value="t", Type="SecureString")
    sm = boto_client("secretsmanager")
    for i in range(3):
        sm.create_secret(Name=f"app/prod/s{i}", SecretString=json.dumps({f"k{i}": "x"}))
    sm.create_secret(Name="shared/db", SecretString=json.dumps({"password": "pw"}))
    pinned = sm.create_secret(Name="shared/pinned", SecretString="p")["VersionId"]
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_MANAGER_PREFIX": "app/prod",
        "TOKEN": "ssm:/shared/token",
        "DB_PASSWORD": "secretsmanager:shared/db:password",
        "PINNED": f"secretsmanager:shared/pinned:::{pinned}",
        "SECRETS_AGENT_LOG_FORMAT": "json",
        "SECRETS_AGENT_WATCH_INTERVAL": "30",
    }
    cost = _cost(tmp_path, env)
    operations: dict[str, int] = cost["operations"]
    assert operations["ssm:GetParametersByPath"] >= 3  # 10 parameters a page
    assert operations["ssm:GetParameters"] == 1
    # Secrets Manager is asked for versions only: one ListSecrets page for the prefix, one
    # DescribeSecret for the reference that can move, nothing for the one pinned to a version.
    assert operations["secretsmanager:ListSecrets"] == 1
    assert operations["secretsmanager:DescribeSecret"] == 1
    assert "secretsmanager:BatchGetSecretValue" not in operations
    assert "secretsmanager:GetSecretValue" not in operations
    assert cost["calls"] == sum(operations.values())

    # A supervisor with the same configuration sends exactly that at each check.
    with FaultProxy(moto.url) as proxy, Fleet(tmp_path) as fleet:
        sup = fleet.start(checking_every_second(env, proxy.url))
        proxy.reset_counters()  # the first check comes at least 0.85 s after the start
        wait_until(lambda: len(sup.events("secrets checked")) >= 3, timeout=60, what="3 checks")
        sent = proxy.stats()["by_target"]
        done = len(sup.events("secrets checked"))
    per_check: dict[str, int] = {}
    for target, count in sent.items():
        service = "ssm" if target.startswith("AmazonSSM.") else "secretsmanager"
        per_check[f"{service}:{target.rpartition('.')[2]}"] = count
    assert {op: n * done for op, n in operations.items()} == per_check, (done, sent)


def test_redeploy_mode_adds_one_describe_services_per_check(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    put(boto_client("ssm"), "/app/prod/a", "x", "String")
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_WATCH_INTERVAL": "300",
        "SECRETS_AGENT_ON_CHANGE": "redeploy",
    }
    cost = _cost(tmp_path, env)
    assert cost["operations"] == {"ssm:GetParametersByPath": 1, "ecs:DescribeServices": 1}
    assert cost["calls"] == 2
