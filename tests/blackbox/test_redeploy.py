"""SECRETS_AGENT_ON_CHANGE=redeploy against moto's ECS and a task metadata server on 127.0.0.1.

A rotated secret asks ECS for one new deployment of the task's own service
(``UpdateService(forceNewDeployment)``) and keeps the running command; the service is found at
start (setting, metadata ``ServiceName``, or the task's group through ``DescribeTasks``), so a
misconfiguration is 78 before the command starts; a denied ``UpdateService`` keeps the command,
warns naming the action and is retried at the next check; 20 supervisors of one service give
one deployment for a rotation (and none for the next while that deployment replaces them), and
check together about once per interval.

moto's ECS keeps one deployment per service and gives it a new id and ``createdAt`` on each
``forceNewDeployment``; the number of deployments asked for is counted independently, as the
``UpdateService`` requests that reach moto through a counting proxy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_env, refused, restricted_credentials, run_agent
from tests.support.ecs_metadata import TaskMetadataServer, task_document
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import Supervised, wait_until

INTERVAL = 1.0
CLUSTER = "prod"
SERVICE = "web"


def slow_wait(predicate: Any, *, timeout: float, what: str) -> None:
    """wait_until for predicates that read twenty log files: every half second."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def starts(sup: Supervised) -> int:
    return len([line for line in sup.lines() if line.startswith("ready")])


REQUESTED = "secrets changed; new deployment requested"
EXISTS = "secrets changed; a newer deployment replaces this task already"


@dataclass
class Ecs:
    client: Any
    cluster_arn: str
    service_arn: str
    tasks: list[str]

    def deployment(self) -> tuple[str, float]:
        service = self.client.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        (deployment,) = service["deployments"]
        return str(deployment["id"]), deployment["createdAt"].timestamp()

    def endpoints(self, metadata: TaskMetadataServer) -> list[str]:
        """A metadata endpoint per task, as on EC2 (``ServiceName`` in the document)."""
        return [
            metadata.add(
                task_document(cluster_arn=self.cluster_arn, task_arn=arn, service_name=SERVICE)
            )
            for arn in self.tasks
        ]


def service_with_token(boto_client: Any, tasks: int) -> Ecs:
    """/app/prod/api_token at tok-1 (``rotate`` changes it), and the service of ``tasks`` tasks."""
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    return make_service(boto_client, tasks)


def make_service(boto_client: Any, tasks: int, *, group: str = f"service:{SERVICE}") -> Ecs:
    ecs = boto_client("ecs")
    cluster_arn = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}]
    )
    service = ecs.create_service(
        cluster=CLUSTER,
        serviceName=SERVICE,
        taskDefinition="app",
        desiredCount=tasks,
        launchType="FARGATE",
    )["service"]
    # moto counts a service's tasks as running once its desired count is set again.
    ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=tasks)
    arns = [
        t["taskArn"]
        for t in ecs.run_task(
            cluster=CLUSTER, taskDefinition="app", count=tasks, launchType="FARGATE", group=group
        )["tasks"]
    ]
    return Ecs(ecs, cluster_arn, str(service["serviceArn"]), arns)


def redeploy_env(
    endpoint: str, *, prefix: str | None = "/app/prod", **extra: str
) -> dict[str, str]:
    """Supervise mode (a check every second through the test wrapper), on-change redeploy, JSON
    debug logs, ``PARAMETER_STORE_PREFIX=prefix`` unless None; ``extra`` on top."""
    env = base_env(endpoint)
    if prefix is not None:
        env["PARAMETER_STORE_PREFIX"] = prefix
    env.update(
        SECRETS_AGENT_WATCH_INTERVAL=str(INTERVAL),
        SECRETS_AGENT_ON_CHANGE="redeploy",
        SECRETS_AGENT_LOG_LEVEL="debug",
        SECRETS_AGENT_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def refused_at_start(tmp_path: Path, env: dict[str, str], code: int, *words: str) -> str:
    """The agent started with ``env`` (warnings and errors only) fails closed at start with
    ``code``, one line holding ``words``; that line."""
    run = run_agent(tmp_path, at_start(env | {"SECRETS_AGENT_LOG_LEVEL": "warning"}))
    return refused(run, code, *words)


def finding_env(
    endpoint: str, ecs: Ecs, metadata: TaskMetadataServer, found_by: str
) -> dict[str, str]:
    """``redeploy_env`` for an agent that finds its service by ``found_by``: ``setting``
    (SECRETS_AGENT_ECS_SERVICE and _CLUSTER), ``metadata`` (``ServiceName`` in the task's
    metadata, as on EC2) or ``DescribeTasks`` (none, as on Fargate: the task's group)."""
    env = redeploy_env(endpoint)
    if found_by == "setting":
        env.update(SECRETS_AGENT_ECS_SERVICE=SERVICE, SECRETS_AGENT_ECS_CLUSTER=CLUSTER)
    else:
        name = SERVICE if found_by == "metadata" else None
        doc = task_document(cluster_arn=ecs.cluster_arn, task_arn=ecs.tasks[0], service_name=name)
        env["ECS_CONTAINER_METADATA_URI_V4"] = metadata.add(doc)
    return env


def at_start(env: dict[str, str]) -> dict[str, str]:
    """For a run that ends at start (a 78, iam-policy): the real entrypoint, whose interval
    floor is 30 s, with a valid interval."""
    return env | {"SECRETS_AGENT_WATCH_INTERVAL": "30"}


def rotate(boto_client: Any, value: str) -> None:
    boto_client("ssm").put_parameter(
        Name="/app/prod/api_token", Value=value, Type="SecureString", Overwrite=True
    )


# ----------------------------------------------------------------------------- one task


@pytest.mark.parametrize("found_by", ["metadata", "DescribeTasks", "setting"])
def test_a_rotation_asks_for_one_deployment_and_keeps_the_command(
    moto: MotoServer,
    boto_client: Any,
    metadata: TaskMetadataServer,
    agents: Any,
    found_by: str,
) -> None:
    ecs = service_with_token(boto_client, 1)
    sup = agents(finding_env(moto.url, ecs, metadata, found_by), "API_TOKEN")
    (start,) = sup.events("changed secrets will redeploy the service")
    assert start["found_by"] == found_by
    assert start["service"] == ecs.service_arn
    # Redeploy mode checks in a check process too: the supervisor never loads the AWS SDK.
    (supervising,) = sup.events("supervising")
    assert supervising["aws_sdk_loaded"] is False
    before = ecs.deployment()

    rotate(boto_client, "tok-2")
    wait_until(lambda: sup.events(REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
    after = ecs.deployment()
    assert after[0] != before[0] and after[1] > before[1]
    (requested,) = sup.events(REQUESTED)
    assert requested["service"] == ecs.service_arn
    assert requested["command"] == "kept"
    assert any("/app/prod/api_token" in change for change in requested["changes"])

    # The command was never stopped; later checks see nothing new and ask for nothing more.
    checked = len(sup.events("secrets checked"))
    wait_until(
        lambda: len(sup.events("secrets checked")) >= checked + 2, timeout=30, what="checks"
    )
    assert len(sup.events(REQUESTED)) == 1
    assert ecs.deployment() == after
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.lines().count("env API_TOKEN=tok-1") == 1
    assert sup.proc.poll() is None
    text = sup.stderr()
    assert "tok-1" not in text and "tok-2" not in text
    assert sup.terminate() == 3


# ----------------------------------------------------------------------------- at start


def test_redeploy_without_metadata_or_service_setting_is_78_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    line = refused_at_start(tmp_path, redeploy_env(moto.url), 78)
    assert "ECS_CONTAINER_METADATA_URI_V4" in line and "SECRETS_AGENT_ECS_SERVICE" in line


def test_a_task_outside_any_service_is_78_at_start(
    moto: MotoServer, boto_client: Any, metadata: TaskMetadataServer, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    ecs = make_service(boto_client, 1, group="family:app")  # a task started by RunTask
    uri = metadata.add(task_document(cluster_arn=ecs.cluster_arn, task_arn=ecs.tasks[0]))
    env = redeploy_env(moto.url, ECS_CONTAINER_METADATA_URI_V4=uri)
    line = refused_at_start(tmp_path, env, 78)
    assert "not part of an ECS service" in line and "family:app" in line


def test_a_named_service_that_does_not_exist_is_78_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    make_service(boto_client, 1)
    env = redeploy_env(
        moto.url,
        SECRETS_AGENT_ECS_SERVICE="no-such-service",
        SECRETS_AGENT_ECS_CLUSTER=CLUSTER,
    )
    refused_at_start(tmp_path, env, 78, "no-such-service")


def test_an_unreachable_metadata_endpoint_is_69_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    from tests.support.moto_server import free_port

    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    unreachable = f"http://127.0.0.1:{free_port()}/v4/x"
    env = redeploy_env(moto.url, ECS_CONTAINER_METADATA_URI_V4=unreachable)
    refused_at_start(tmp_path, env, 69, "metadata")


# ----------------------------------------------------------------------------- fail static


def test_a_denied_update_service_keeps_the_command_warns_and_is_retried(
    moto: MotoServer, boto_client: Any, agents: Any
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="String")
    ecs = make_service(boto_client, 1)
    iam = boto_client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="admin",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
    reads = ["ssm:GetParametersByPath", "ecs:DescribeServices"]
    creds = restricted_credentials(boto_client, moto, "task-role", reads)  # enforcement on
    env = redeploy_env(
        moto.url, SECRETS_AGENT_ECS_SERVICE=SERVICE, SECRETS_AGENT_ECS_CLUSTER=CLUSTER, **creds
    )
    sup = agents(env, "API_TOKEN")

    import boto3

    def admin(service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=moto.url,
            aws_access_key_id=admin_key["AccessKeyId"],
            aws_secret_access_key=admin_key["SecretAccessKey"],
        )

    ecs.client = admin("ecs")
    before = ecs.deployment()
    admin("ssm").put_parameter(
        Name="/app/prod/api_token", Value="tok-2", Type="String", Overwrite=True
    )
    failed = "secrets check failed; command kept"
    wait_until(lambda: len(sup.events(failed)) >= 2, timeout=30, what=f"warnings: {sup.stderr()}")
    first = sup.events(failed)[0]
    assert first["level"] == "warning"
    assert "ecs:UpdateService" in first["error"] and ecs.service_arn in first["error"]
    assert ecs.deployment() == before
    assert starts(sup) == 1 and sup.proc.poll() is None
    assert not sup.events(REQUESTED)

    # Granted: the next check finds the same change again and asks.
    admin("iam").put_user_policy(
        UserName="task-role",
        PolicyName="task-role",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": [*reads, "ecs:UpdateService"], "Resource": "*"}
                ],
            }
        ),
    )
    wait_until(lambda: sup.events(REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
    assert ecs.deployment()[0] != before[0]
    assert starts(sup) == 1 and sup.proc.poll() is None
    assert "signal SIGTERM" not in sup.lines()


def test_a_deleted_parameter_asks_for_no_deployment(
    moto: MotoServer, boto_client: Any, agents: Any
) -> None:
    """New tasks would start without the variable: a failed check, not a deployment."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    ssm.put_parameter(Name="/app/prod/other", Value="o", Type="SecureString")
    ecs = make_service(boto_client, 1)
    env = redeploy_env(
        moto.url, SECRETS_AGENT_ECS_SERVICE=SERVICE, SECRETS_AGENT_ECS_CLUSTER=CLUSTER
    )
    sup = agents(env, "API_TOKEN")
    before = ecs.deployment()
    ssm.delete_parameter(Name="/app/prod/other")
    failed = "secrets check failed; command kept"
    wait_until(lambda: len(sup.events(failed)) >= 2, timeout=30, what=f"warnings: {sup.stderr()}")
    assert "OTHER" in sup.events(failed)[0]["error"]
    assert ecs.deployment() == before
    assert not sup.events(REQUESTED)
    assert starts(sup) == 1 and sup.proc.poll() is None


# ----------------------------------------------------------------------------- a service of 20

FLEET = 20


def test_twenty_tasks_one_deployment_per_rotation_and_one_check_per_interval(
    moto: MotoServer,
    boto_client: Any,
    metadata: TaskMetadataServer,
    agents: Any,
) -> None:
    ecs = service_with_token(boto_client, FLEET)
    with FaultProxy(moto.url) as proxy:
        fleet = []
        for uri in ecs.endpoints(metadata):
            env = redeploy_env(proxy.url, ECS_CONTAINER_METADATA_URI_V4=uri)
            fleet.append(agents(env, "API_TOKEN", wait=False))
        for sup in fleet:
            try:
                sup.wait_line("ready", timeout=120)
            except AssertionError:
                raise AssertionError(sup.stderr()) from None
        for sup in fleet:
            (start,) = sup.events("changed secrets will redeploy the service")
            assert start["running"] == FLEET and start["check_every"] == FLEET * INTERVAL

        # Idle: the fleet together checks about once per interval. Each task waits at least
        # 0.85 x 20 intervals between its checks (its first check at a random point of the
        # span), so in any window it checks at most window / (0.85 x 20 x interval) + 1 times,
        # however fast or slow the machine; unstretched, 20 tasks would check ~20 times a second.
        proxy.reset_counters()
        window_start = time.monotonic()
        time.sleep(20)
        idle = proxy.operations()
        window = time.monotonic() - window_start
        bound = FLEET * (window / (0.85 * FLEET * INTERVAL) + 1)
        pages = idle.get("GetParametersByPath", 0)
        assert 0 < pages <= bound, (idle, window)
        assert idle.get("DescribeServices", 0) <= pages
        print(f"\nidle: {idle} in {window:.1f} s: {pages / window:.2f} checks/s for {FLEET} tasks")

        results = []
        for rotation, value in enumerate(("tok-2", "tok-3"), start=1):
            proxy.reset_counters()
            rotate(boto_client, value)

            def seen(n: int = rotation) -> bool:
                return all(len(s.events(REQUESTED)) + len(s.events(EXISTS)) >= n for s in fleet)

            # Every task sees the change within its stretched interval (20 x 1 s, +15 %).
            slow_wait(seen, timeout=120, what=f"every task to see rotation {rotation}")
            ops = proxy.operations()
            asked = sum(len(s.events(REQUESTED)) for s in fleet)
            results.append((ops.get("UpdateService", 0), asked))
            print(f"rotation {rotation}: {ops}")
        # One deployment for the first rotation (two when two tasks asked in the same instant).
        # The second comes while that deployment would be replacing these tasks (moto starts
        # none): each finds a deployment newer than itself and asks for nothing; the new
        # deployment's tasks would check for themselves (tests/blackbox/test_redeploy_rollback.py).
        updates, asked = results[0]
        assert 1 <= updates <= 2 and asked == updates, results
        assert results[1][0] == 0 and results[1][1] == asked, results
        for sup in fleet:
            assert starts(sup) == 1 and sup.proc.poll() is None
            assert "signal SIGTERM" not in sup.lines()
            assert "tok-" not in sup.stderr()
        print(f"UpdateService per rotation: {[u for u, _ in results]}")


# ----------------------------------------------------------------------------- IAM


@pytest.mark.parametrize("named", [False, True], ids=["found-by-group", "named"])
def test_iam_policy_allows_every_call_of_a_redeploy_run_and_nothing_more(
    moto: MotoServer,
    boto_client: Any,
    metadata: TaskMetadataServer,
    agents: Any,
    named: bool,
) -> None:
    from secrets_agent.policy import needs as iam
    from tests.support import iam_support

    ecs = service_with_token(boto_client, 1)
    env = finding_env(moto.url, ecs, metadata, "setting" if named else "DescribeTasks")
    # Named by the settings, iam-policy reads them; found by the task's group, it is told.
    cluster, service = (None, None) if named else (CLUSTER, SERVICE)
    sup = agents(env, "API_TOKEN")
    rotate(boto_client, "tok-2")
    wait_until(lambda: sup.events(REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
    calls = iam_support.aws_calls(sup.stderr())
    operations = {f"{c['service']}:{c['operation']}" for c in calls}
    assert {"ecs:DescribeServices", "ecs:UpdateService"} <= operations
    assert ("ecs:DescribeTasks" in operations) is not named

    account = iam_support.ACCOUNT
    text = iam.render_for_environment(
        at_start(env), fmt="json", account_id=account, ecs_cluster=cluster, ecs_service=service
    )
    policy = json.loads(text)
    assert iam_support.parliament_findings(text) == []
    assert iam_support.static_problems(policy, regions=["us-east-1"]) == []
    checks = [c for call in calls for c in iam_support.checks_for(call, lambda _: [])]
    denied = [c for c in checks if not iam_support.allows(policy, c)]
    assert denied == [], denied
    granted = {a for s in policy["Statement"] for a in iam_support.as_list(s["Action"])}
    assert granted == {c.action for c in checks}
    service = f"arn:aws:ecs:us-east-1:{account}:service/{CLUSTER}/{SERVICE}"
    ecs_resources = {
        r
        for s in policy["Statement"]
        if any(str(a).startswith("ecs:") for a in iam_support.as_list(s["Action"]))
        for r in iam_support.as_list(s["Resource"])
    }
    tasks = f"arn:aws:ecs:us-east-1:{account}:task/{CLUSTER}/*"
    assert ecs_resources == ({service} if named else {service, tasks})


def test_iam_policy_for_redeploy_needs_the_service_named(tmp_path: Path) -> None:
    env = redeploy_env("http://127.0.0.1:9")
    run = run_agent(tmp_path, at_start(env), ["iam-policy", "--account-id", "123456789012"])
    refused(run, 78, "--ecs-service")
    ok = run_agent(
        tmp_path,
        at_start(env),
        ["iam-policy", "--account-id", "123456789012", "--ecs-cluster", CLUSTER,
         "--ecs-service", SERVICE],
    )
    assert ok.returncode == 0, ok.stderr
    assert f"service/{CLUSTER}/{SERVICE}" in ok.stdout
