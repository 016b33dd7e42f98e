"""Supervise mode asks Secrets Manager for versions, and reads values only when one moved.

A supervisor with a Secrets Manager prefix and references runs through a counting proxy: its
checks send ListSecrets and DescribeSecret and no value read until a secret changes; a new
version of a referenced secret, then of a secret under the prefix, restarts the command with
the new value; and iam-policy allows every call of the run, and nothing more.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from secrets_agent.aws.clients import Clients
from secrets_agent.aws.sm_versions import secrets_manager_unchanged, version_check_calls
from secrets_agent.core.errors import ServiceError
from secrets_agent.core.plan import Plan
from secrets_agent.output.logs import Logger
from secrets_agent.policy import needs as iam
from tests.conftest import base_env
from tests.support.fault_proxy import FaultProxy
from tests.support.iam_support import ACCOUNT, allows, as_list, aws_calls, checks_for
from tests.support.moto_server import MotoServer
from tests.support.supervised import SIGNAL_ECHO, launch, wait_until
from tests.support.supervised import rotating_agent_argv as agent_argv

VALUE_READS = ("GetSecretValue", "BatchGetSecretValue")


def test_checks_read_versions_only_and_a_moved_version_restarts(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/prod/db", SecretString=json.dumps({"password": "pw-1"}))
    sm.create_secret(Name="shared/smtp", SecretString=json.dumps({"password": "smtp-1"}))
    pinned = sm.create_secret(Name="shared/pinned", SecretString="pin-1")["VersionId"]
    with FaultProxy(moto.url) as proxy:
        env = base_env(proxy.url) | {
            "SECRETS_MANAGER_PREFIX": "app/prod",
            "SMTP_PASSWORD": "secretsmanager:shared/smtp:password",
            "PINNED": f"secretsmanager:shared/pinned:::{pinned}",
            "SECRETS_AGENT_WATCH_INTERVAL": "1",
            "SECRETS_AGENT_LOG_LEVEL": "debug",
            "SECRETS_AGENT_LOG_FORMAT": "json",
        }
        out = tmp_path / "echo.log"
        command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out)]
        for name in ("DB_PASSWORD", "SMTP_PASSWORD", "PINNED"):
            command += ["--env", name]
        sup = launch(tmp_path, agent_argv(command), pid1=False, env=env, out=out)
        try:
            sup.wait_line("ready", timeout=30)
            start = proxy.operations()

            def checked() -> int:
                return sup.stderr().count('"event":"secrets checked"')

            wait_until(lambda: checked() >= 3, timeout=60, what="three checks")
            idle = proxy.operations()
            for name in VALUE_READS:
                assert idle.get(name, 0) == start.get(name, 0), (start, idle)
            assert idle.get("ListSecrets", 0) >= 3 and idle.get("DescribeSecret", 0) >= 3

            sm.put_secret_value(
                SecretId="shared/smtp", SecretString=json.dumps({"password": "smtp-2"})
            )
            line = sup.wait_line("env SMTP_PASSWORD", count=2, timeout=30)
            assert line == "env SMTP_PASSWORD=smtp-2"
            sm.put_secret_value(
                SecretId="app/prod/db", SecretString=json.dumps({"password": "pw-2"})
            )
            assert sup.wait_line("env DB_PASSWORD", count=3, timeout=30) == "env DB_PASSWORD=pw-2"
            assert sup.lines().count("env PINNED=pin-1") == 3
        finally:
            sup.close()
    stderr = sup.stderr()
    for value in ("pw-1", "pw-2", "smtp-1", "smtp-2", "pin-1"):
        assert value not in stderr

    # iam-policy (supervise mode) allows every call of the run, and grants nothing unused.
    listed = sm.list_secrets()["SecretList"]

    def lookup(value: str) -> list[str]:
        if value.endswith("*"):
            return [s["ARN"] for s in listed if s["Name"].startswith(value[:-1])]
        return [s["ARN"] for s in listed if value in (s["Name"], s["ARN"])]

    # iam-policy reads the task's settings, whose interval floor is 30 s (the run used 1 s).
    task_env = env | {"SECRETS_AGENT_WATCH_INTERVAL": "30"}
    policy = json.loads(iam.render_for_environment(task_env, fmt="json", account_id=ACCOUNT))
    checks = [c for call in aws_calls(stderr) for c in checks_for(call, lookup)]
    assert [c for c in checks if not allows(policy, c)] == []
    granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    assert granted == {c.action for c in checks}
    described = [
        s for s in policy["Statement"] if "secretsmanager:DescribeSecret" in as_list(s["Action"])
    ]
    assert len(described) == 1 and all("pinned" not in r for r in as_list(described[0]["Resource"]))


# ------------------------------------------------------------ the version check's pages (Stubber)


class _Clients(Clients):
    """One stubbed client for every region (handed in in place of the clients ``get`` makes)."""

    def __init__(self, client: Any) -> None:
        super().__init__(environ={}, timeout=5, log=Logger(level="error", fmt="json"))
        self.client = client

    def get(self, service: str, region: str | None = None, *, attempts: int | None = None) -> Any:
        return self.client


def _list_params(prefix_filter: str, token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Filters": [{"Key": "name", "Values": [prefix_filter]}],
        "MaxResults": 100,
    }
    if token:
        params["NextToken"] = token
    return params


def _listed(name: str, version: str) -> dict[str, Any]:
    return {"Name": name, "SecretVersionsToStages": {version: ["AWSCURRENT"]}}


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_each_layer_is_listed_under_its_own_filter(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    for layer, version in (("app/common", "1" * 32), ("app/prod", "2" * 32)):
        page = {"SecretList": [_listed(f"{layer}/db", version)]}
        stub.add_response("list_secrets", page, _list_params(f"{layer}/"))
    plan = Plan(ssm_prefixes=(), sm_prefixes=("app/common", "app/prod"), refs={})
    fingerprint = {
        "secretsmanager:app/common/db": ("1" * 32, "d1"),
        "secretsmanager:app/prod/db": ("2" * 32, "d2"),
    }
    assert secrets_manager_unchanged(plan, _Clients(client), fingerprint)
    assert version_check_calls(plan, fingerprint) == {"secretsmanager:ListSecrets": 2}


def test_a_page_token_seen_before_stops_the_version_check(stubbed: tuple[Any, Stubber]) -> None:
    """Tokens a, b, a: not only a token repeated at once ends the listing."""
    client, stub = stubbed
    stub.add_response("list_secrets", {"SecretList": [], "NextToken": "a"}, _list_params("app/"))
    stub.add_response(
        "list_secrets", {"SecretList": [], "NextToken": "b"}, _list_params("app/", "a")
    )
    stub.add_response(
        "list_secrets", {"SecretList": [], "NextToken": "a"}, _list_params("app/", "b")
    )
    plan = Plan(ssm_prefixes=(), sm_prefixes=("app",), refs={})
    with pytest.raises(ServiceError, match="same page token"):
        secrets_manager_unchanged(plan, _Clients(client), {})
