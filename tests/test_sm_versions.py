"""Supervise mode asks Secrets Manager for versions, and reads values only when one moved.

A supervisor with a Secrets Manager prefix and references runs through a counting proxy: its
checks send ListSecrets and DescribeSecret and no value read until a secret changes; a new
version of a referenced secret, then of a secret under the prefix, restarts the command with
the new value; and iam-policy allows every call of the run, and nothing more.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agent import iam
from tests.conftest import base_env
from tests.fault_proxy import FaultProxy
from tests.iam_support import ACCOUNT, allows, as_list, aws_calls, checks_for
from tests.moto_server import MotoServer
from tests.supervised import SIGNAL_ECHO, launch, wait_until

try:  # the entrypoint allowed a check every second (tests only), where the suite has it
    from tests.supervised import rotating_agent_argv as agent_argv  # type: ignore[attr-defined]
except ImportError:
    from tests.supervised import agent_argv

VALUE_READS = ("GetSecretValue", "BatchGetSecretValue")


def _reads(proxy: FaultProxy) -> dict[str, int]:
    out: dict[str, int] = {}
    for target, count in proxy.stats()["by_target"].items():
        name = str(target).rpartition(".")[2]
        out[name] = out.get(name, 0) + int(count)
    return out


def test_checks_read_versions_only_and_a_moved_version_restarts(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/prod/db", SecretString=json.dumps({"password": "pw-1"}))
    sm.create_secret(Name="shared/smtp", SecretString=json.dumps({"password": "smtp-1"}))
    pinned = sm.create_secret(Name="shared/pinned", SecretString="pin-1")["VersionId"]
    with FaultProxy(moto.url) as proxy:
        env = base_env(proxy.url)
        env.update(
            SECRETS_MANAGER_PREFIX="app/prod",
            SMTP_PASSWORD="secretsmanager:shared/smtp:password",
            PINNED=f"secretsmanager:shared/pinned:::{pinned}",
            SECRETS_AGENT_WATCH_INTERVAL="1",
            SECRETS_AGENT_LOG_LEVEL="debug",
            SECRETS_AGENT_LOG_FORMAT="json",
        )
        out = tmp_path / "echo.log"
        command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out)]
        for name in ("DB_PASSWORD", "SMTP_PASSWORD", "PINNED"):
            command += ["--env", name]
        sup = launch(tmp_path, agent_argv(command), pid1=False, env=env, out=out)
        try:
            sup.wait_line("ready", timeout=30)
            start = _reads(proxy)

            def checks() -> int:
                return sup.stderr().count('"event":"secrets checked"')

            wait_until(lambda: checks() >= 3, timeout=60, what="three checks")
            idle = _reads(proxy)
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

    rendering = {**env, "SECRETS_AGENT_WATCH_INTERVAL": "60"}  # what a task would have
    policy = json.loads(iam.render_for_environment(rendering, fmt="json", account_id=ACCOUNT))
    checks = [c for call in aws_calls(stderr) for c in checks_for(call, lookup)]
    assert [c for c in checks if not allows(policy, c)] == []
    granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    assert granted == {c.action for c in checks}
    described = [
        s for s in policy["Statement"] if "secretsmanager:DescribeSecret" in as_list(s["Action"])
    ]
    assert len(described) == 1 and all("pinned" not in r for r in as_list(described[0]["Resource"]))
