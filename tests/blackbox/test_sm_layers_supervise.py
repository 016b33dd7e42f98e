"""Layered Secrets Manager prefixes in supervise mode (``SECRETS_MANAGER_PREFIX=app/common,
app/prod``), black-box against moto through a counting proxy: a check that finds nothing asks
for versions only, exactly the calls ``secrets-agent check`` predicts, and a new version in the
second layer restarts the command with the new value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import base_env, run_agent
from tests.support.fault_proxy import FaultProxy
from tests.support.logs import one_event
from tests.support.moto_server import MotoServer
from tests.support.seed import json_secret
from tests.support.supervised import Fleet, checking_every_second, wait_until

CANARY = "smlayer-canary-4c1e"
VALUE_READS = ("secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue")


def _cost(stderr: str) -> dict[str, Any]:
    return one_event(stderr, "one change check costs")


def _sent(proxy: FaultProxy) -> dict[str, int]:
    """``service:Operation`` -> requests the proxy passed on since its last reset."""
    out: dict[str, int] = {}
    for target, count in proxy.stats()["by_target"].items():
        service = "ssm" if str(target).startswith("AmazonSSM.") else "secretsmanager"
        op = f"{service}:{str(target).rpartition('.')[2]}"
        out[op] = out.get(op, 0) + int(count)
    return out


def test_layered_secrets_manager_checks_cost_what_check_predicts_and_a_rotation_restarts(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    sm = boto_client("secretsmanager")
    json_secret(sm, "app/common/db", {"host": "db.common", "password": CANARY + "-common"})
    sm.create_secret(Name="app/common/smtp", SecretString=json.dumps({"host": "smtp.common"}))
    sm.create_secret(Name="app/prod/db", SecretString=json.dumps({"password": CANARY + "-1"}))
    sm.create_secret(Name="app/production/leak", SecretString=json.dumps({"x": "no"}))
    env = base_env(moto.url)
    env.update(
        SECRETS_MANAGER_PREFIX="app/common,app/prod",
        SECRETS_AGENT_LOG_FORMAT="json",
        SECRETS_AGENT_WATCH_INTERVAL="30",
    )
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    predicted: dict[str, int] = _cost(run.stderr)["operations"]
    # Versions only, each layer listed under its own name filter.
    assert predicted == {"secretsmanager:ListSecrets": 2}, predicted

    with FaultProxy(moto.url) as proxy, Fleet(tmp_path) as fleet:
        reported = ("DB_HOST", "DB_PASSWORD", "SMTP_HOST", "X")
        sup = fleet.start(checking_every_second(env, proxy.url), *reported)
        assert "env DB_PASSWORD=" + CANARY + "-1" in sup.lines()  # the later layer wins
        assert "env DB_HOST=db.common" in sup.lines()
        assert "env X=<unset>" in sup.lines()  # app/production is not under app/prod
        proxy.reset_counters()  # the first check comes at least 0.85 s after the start
        wait_until(lambda: len(sup.events("secrets checked")) >= 3, timeout=60, what="3 checks")
        sent = _sent(proxy)
        done = len(sup.events("secrets checked"))
        # Each unchanged check sends exactly what check predicted, and reads no value.
        assert {op: n * done for op, n in predicted.items()} == sent, (done, sent)
        assert not any(sent.get(op) for op in VALUE_READS), sent

        # A new version in the second layer restarts the command with the new value.
        sm.put_secret_value(
            SecretId="app/prod/db", SecretString=json.dumps({"password": CANARY + "-2"})
        )
        line = sup.wait_line("env DB_PASSWORD", count=2, timeout=30)
        assert line == "env DB_PASSWORD=" + CANARY + "-2"
        assert sup.lines().count("env DB_HOST=db.common") == 2
        assert sup.lines().count("env SMTP_HOST=smtp.common") == 2
        assert CANARY not in sup.stderr()
    assert CANARY not in run.stderr
