"""``secrets-agent check`` says what one change check costs in AWS calls, and it is what a
supervisor's checks really send: counted by a proxy in front of moto over several checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import base_env, run_agent
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import SIGNAL_ECHO, launch, wait_until
from tests.support.supervised import rotating_agent_argv as agent_argv


def _cost(stderr: str) -> dict[str, Any]:
    found = [
        event
        for line in stderr.splitlines()
        if line.startswith("{")
        if (event := json.loads(line)).get("event") == "one change check costs"
    ]
    assert len(found) == 1, stderr
    cost: dict[str, Any] = found[0]
    return cost


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
    env = base_env(moto.url)
    env.update(
        PARAMETER_STORE_PREFIX="/app/prod",
        SECRETS_MANAGER_PREFIX="app/prod",
        TOKEN="ssm:/shared/token",
        DB_PASSWORD="secretsmanager:shared/db:password",
        PINNED=f"secretsmanager:shared/pinned:::{pinned}",
        SECRETS_AGENT_LOG_FORMAT="json",
        SECRETS_AGENT_WATCH_INTERVAL="30",
    )
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    cost = _cost(run.stderr)
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
    with FaultProxy(moto.url) as proxy:
        env.update(
            AWS_ENDPOINT_URL=proxy.url,
            SECRETS_AGENT_LOG_LEVEL="debug",
            SECRETS_AGENT_WATCH_INTERVAL="1",  # through the short-interval wrapper
        )
        out = tmp_path / "echo.log"
        sup = launch(
            tmp_path,
            agent_argv([sys.executable, str(SIGNAL_ECHO), "--out", str(out)]),
            pid1=False,
            env=env,
            out=out,
        )
        try:
            sup.wait_line("ready", timeout=30)
            proxy.reset_counters()  # the first check comes at least 0.85 s after the start

            def checks() -> int:
                return sup.stderr().count('"event":"secrets checked"')

            wait_until(lambda: checks() >= 3, timeout=60, what="three checks")
            sent = proxy.stats()["by_target"]
            done = checks()
        finally:
            sup.close()
    per_check: dict[str, int] = {}
    for target, count in sent.items():
        service = "ssm" if target.startswith("AmazonSSM.") else "secretsmanager"
        per_check[f"{service}:{target.rpartition('.')[2]}"] = count
    assert {op: n * done for op, n in operations.items()} == per_check, (done, sent)


def test_redeploy_mode_adds_one_describe_services_per_check(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/a", Value="x", Type="String")
    env = base_env(moto.url)
    env.update(
        PARAMETER_STORE_PREFIX="/app/prod",
        SECRETS_AGENT_LOG_FORMAT="json",
        SECRETS_AGENT_WATCH_INTERVAL="300",
        SECRETS_AGENT_ON_CHANGE="redeploy",
    )
    cost = _cost(run_agent(tmp_path, env, ["check"]).stderr)
    assert cost["operations"] == {"ssm:GetParametersByPath": 1, "ecs:DescribeServices": 1}
    assert cost["calls"] == 2
