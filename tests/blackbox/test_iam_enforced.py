"""The rendered actions are sufficient and each one is necessary, under moto's IAM enforcement.

moto enforces IAM by action only: every request is checked against resource "*", conditions
are ignored, and only the action of the request itself is checked (not the implicit permissions
of BatchGetSecretValue). So each user here holds the rendered *actions* on "*"; resource scoping
and the implicit permissions are proven in test_iam.py from the recorded calls.

This module runs its own moto server: enforcement is global to a server and must not leak into
the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secrets_agent.policy import needs as iam
from tests.conftest import base_env, error_line, moto_client, run_agent
from tests.support.ecs_metadata import TaskMetadataServer, task_document
from tests.support.iam_support import ACCOUNT, as_list
from tests.support.moto_server import MotoServer, free_port

#: Per configuration, the actions the rendered policy must hold (checked against the renderer).
ACTIONS: dict[str, tuple[str, ...]] = {
    "path": ("ssm:GetParametersByPath", "kms:Decrypt"),
    "name-prefix": ("ssm:DescribeParameters", "ssm:GetParameters"),
    "references": ("ssm:GetParameters", "secretsmanager:GetSecretValue", "kms:Decrypt"),
    "sm-prefix": (
        "secretsmanager:BatchGetSecretValue",
        "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue",
    ),
    # Layered prefixes: two SSM paths and two Secrets Manager prefixes.
    "layers": (
        "ssm:GetParametersByPath",
        "kms:Decrypt",
        "secretsmanager:BatchGetSecretValue",
        "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue",
    ),
    "redeploy": (
        "ssm:GetParametersByPath",
        "ecs:DescribeServices",
        "ecs:DescribeTasks",
        "ecs:UpdateService",
    ),
}
#: iam-policy's own arguments per configuration (redeploy: the service the task finds itself).
RENDER_ARGS: dict[str, dict[str, str]] = {
    "redeploy": {"ecs_cluster": "prod", "ecs_service": "web"},
}
#: Actions AWS checks implicitly, inside another call; moto checks only the call's own action.
IMPLICIT = {
    ("sm-prefix", "secretsmanager:ListSecrets"): "required by BatchGetSecretValue's filters",
    ("sm-prefix", "secretsmanager:GetSecretValue"): "required per secret BatchGetSecretValue reads",
    ("layers", "secretsmanager:ListSecrets"): "required by BatchGetSecretValue's filters",
    ("layers", "secretsmanager:GetSecretValue"): "required per secret BatchGetSecretValue reads",
}
#: Actions the agent calls only when a secret changes, never at start: their denial keeps the
#: command and warns naming the action (test_redeploy.py proves it under enforcement).
ON_CHANGE_ONLY = {
    ("redeploy", "ecs:UpdateService"): "called only on a change; denied, it is a failed check",
}


@dataclass
class Enforced:
    server: MotoServer
    envs: dict[str, dict[str, str]]
    keys: dict[tuple[str, str | None], tuple[str, str]]  # (config, removed action) -> creds
    tmp: Path


def _start_private_moto() -> MotoServer:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(server.url + "/moto-api/", timeout=1).read()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("moto server did not start")


def _client(server: MotoServer, service: str) -> Any:
    return moto_client(server.url, service)


def _seed_service(server: MotoServer, metadata: TaskMetadataServer) -> str:
    """A service 'web' of cluster 'prod' with one Fargate task; its metadata endpoint's URI."""
    ecs = _client(server, "ecs")
    cluster = ecs.create_cluster(clusterName="prod")["cluster"]["clusterArn"]
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}]
    )
    ecs.create_service(
        cluster="prod", serviceName="web", taskDefinition="app", desiredCount=1,
        launchType="FARGATE",
    )
    task = ecs.run_task(
        cluster="prod", taskDefinition="app", launchType="FARGATE", group="service:web"
    )["tasks"][0]["taskArn"]
    return metadata.add(task_document(cluster_arn=cluster, task_arn=task))


def _seed(server: MotoServer, tmp: Path) -> dict[str, dict[str, str]]:
    ssm = _client(server, "ssm")
    for name, value in [
        ("/kptboard/prod/secret_key_base", "skb"),
        ("/kptboard/prod/database/url", "postgres://db"),
        ("kptboard-rails.secret.key.base", "skb2"),
        ("/shared/token", "v1"),
        ("/kptboard/common/smtp_host", "smtp"),
    ]:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    sm = _client(server, "secretsmanager")
    sm.create_secret(Name="kptboard/prod/database", SecretString=json.dumps({"password": "p"}))
    sm.create_secret(Name="kptboard/common/mail", SecretString=json.dumps({"user": "u"}))
    sm.create_secret(Name="kptboard/other", SecretString=json.dumps({"password": "pw"}))
    ssm.put_parameter(Name="/redeploy/app/token", Value="t", Type="String")
    key = _client(server, "kms").create_key()["KeyMetadata"]["Arn"]
    root = {**base_env(server.url), "SECRETS_AGENT_KMS_KEY_ARNS": key}
    tokens = {}
    for var in ("TOKEN", "PROD_TOKEN"):
        enc = run_agent(tmp, root, ["encrypt", "--key-id", key, "--name", var], stdin="t0k")
        assert enc.returncode == 0, enc.stderr
        tokens[var] = enc.stdout.strip()
    ssm.put_parameter(Name="/kptboard/prod/prod_token", Value=tokens["PROD_TOKEN"], Type="String")
    keys = {"SECRETS_AGENT_KMS_KEY_ARNS": key}
    return {
        "path": {"PARAMETER_STORE_PREFIX": "/kptboard/prod", **keys},
        "name-prefix": {"PARAMETER_STORE_PREFIX": "kptboard-rails"},
        "references": {
            "A": "ssm:/shared/token:1",
            "C": "secretsmanager:kptboard/other:password",
            "TOKEN": tokens["TOKEN"],
            **keys,
        },
        "sm-prefix": {"SECRETS_MANAGER_PREFIX": "kptboard/prod"},
        "layers": {
            "PARAMETER_STORE_PREFIX": "/kptboard/common,/kptboard/prod",
            "SECRETS_MANAGER_PREFIX": "kptboard/common,kptboard/prod",
            **keys,
        },
        "redeploy": {
            "PARAMETER_STORE_PREFIX": "/redeploy/app",
            "SECRETS_AGENT_WATCH_INTERVAL": "60",
            "SECRETS_AGENT_ON_CHANGE": "redeploy",
        },
    }


def _user(server: MotoServer, name: str, actions: list[str]) -> tuple[str, str]:
    iam_client = _client(server, "iam")
    iam_client.create_user(UserName=name)
    if actions:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam_client.put_user_policy(
            UserName=name, PolicyName="secrets-agent", PolicyDocument=json.dumps(document)
        )
    key = iam_client.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def enforced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforced]:
    server = _start_private_moto()
    tmp = tmp_path_factory.mktemp("iam-enforced")
    metadata = TaskMetadataServer().start()
    try:
        configs = _seed(server, tmp)
        configs["redeploy"]["ECS_CONTAINER_METADATA_URI_V4"] = _seed_service(server, metadata)
        envs: dict[str, dict[str, str]] = {}
        creds: dict[tuple[str, str | None], tuple[str, str]] = {}
        for name, config in configs.items():
            env = {**base_env(server.url), **config}
            policy = json.loads(
                iam.render_for_environment(
                    env, fmt="json", account_id=ACCOUNT, **RENDER_ARGS.get(name, {})
                )
            )
            actions = sorted({a for s in policy["Statement"] for a in as_list(s["Action"])})
            assert actions == sorted(ACTIONS[name]), name
            envs[name] = env
            creds[(name, None)] = _user(server, f"{name}-all", actions)
            for i, removed in enumerate(actions):
                rest = [a for a in actions if a != removed]
                creds[(name, removed)] = _user(server, f"{name}-minus-{i}", rest)
        server.post("/moto-api/reset-auth", b"0")  # from now on every request is authorized
        yield Enforced(server, envs, creds, tmp)
    finally:
        metadata.stop()
        try:
            server.post("/moto-api/reset-auth", b"inf")
        finally:
            server.stop()


def _run_as(enforced: Enforced, config: str, removed: str | None) -> Any:
    key_id, secret = enforced.keys[(config, removed)]
    env = {**enforced.envs[config], "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    return run_agent(enforced.tmp, env)


@pytest.mark.parametrize("config", sorted(ACTIONS))
def test_exactly_the_rendered_actions_are_enough(enforced: Enforced, config: str) -> None:
    run = _run_as(enforced, config, None)
    assert run.returncode == 0, run.stderr
    assert run.ran


def test_enforcement_is_on(enforced: Enforced) -> None:
    """The control: the root test credentials, unknown to moto's IAM, are now refused."""
    env = {**enforced.envs["name-prefix"]}
    run = run_agent(enforced.tmp, env)
    assert run.returncode == 77, run.stderr
    assert not run.ran


@pytest.mark.parametrize(
    ("config", "action"), [(c, a) for c, actions in sorted(ACTIONS.items()) for a in actions]
)
def test_each_rendered_action_is_necessary(enforced: Enforced, config: str, action: str) -> None:
    if (config, action) in IMPLICIT:
        pytest.skip(f"{action}: {IMPLICIT[(config, action)]}; moto does not check it")
    if (config, action) in ON_CHANGE_ONLY:
        run = _run_as(enforced, config, action)
        assert run.returncode == 0 and run.ran, run.stderr  # the start does not need it
        pytest.skip(f"{action}: {ON_CHANGE_ONLY[(config, action)]}")
    run = _run_as(enforced, config, action)
    assert run.returncode == 77, run.stderr
    assert not run.ran
    line = error_line(run.stderr)
    assert action in line, line
