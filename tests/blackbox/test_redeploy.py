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

import functools
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_env, error_lines, restricted_credentials, run_agent
from tests.support.ecs_metadata import TaskMetadataServer, task_document
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import Fleet, Supervised, wait_until

INTERVAL = 1.0
CLUSTER = "prod"
SERVICE = "web"


def events(sup: Supervised, name: str) -> list[dict[str, Any]]:
    out = []
    for line in sup.stderr().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


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


@pytest.fixture
def metadata() -> Iterator[TaskMetadataServer]:
    with TaskMetadataServer() as server:
        yield server


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Any]:
    fleet = Fleet(tmp_path)
    yield functools.partial(fleet.start, timeout=60)
    fleet.close()


def redeploy_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = base_env(endpoint)
    env.update(
        PARAMETER_STORE_PREFIX="/app/prod",
        SECRETS_AGENT_WATCH_INTERVAL=str(INTERVAL),
        SECRETS_AGENT_ON_CHANGE="redeploy",
        SECRETS_AGENT_LOG_LEVEL="debug",
        SECRETS_AGENT_LOG_FORMAT="json",
    )
    env.update(extra)
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
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    ecs = make_service(boto_client, 1)
    env = redeploy_env(moto.url)
    if found_by == "setting":
        env.update(SECRETS_AGENT_ECS_SERVICE=SERVICE, SECRETS_AGENT_ECS_CLUSTER=CLUSTER)
    else:
        # EC2 tasks get ServiceName in their metadata; Fargate tasks do not.
        name = SERVICE if found_by == "metadata" else None
        doc = task_document(cluster_arn=ecs.cluster_arn, task_arn=ecs.tasks[0], service_name=name)
        env["ECS_CONTAINER_METADATA_URI_V4"] = metadata.add(doc)
    sup = agents(env, "API_TOKEN")
    (start,) = events(sup, "changed secrets will redeploy the service")
    assert start["found_by"] == found_by
    assert start["service"] == ecs.service_arn
    # Redeploy mode checks in a check process too: the supervisor never loads the AWS SDK.
    (supervising,) = events(sup, "supervising")
    assert supervising["aws_sdk_loaded"] is False
    before = ecs.deployment()

    rotate(boto_client, "tok-2")
    wait_until(lambda: events(sup, REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
    after = ecs.deployment()
    assert after[0] != before[0] and after[1] > before[1]
    (requested,) = events(sup, REQUESTED)
    assert requested["service"] == ecs.service_arn
    assert requested["command"] == "kept"
    assert any("/app/prod/api_token" in change for change in requested["changes"])

    # The command was never stopped; later checks see nothing new and ask for nothing more.
    checked = len(events(sup, "secrets checked"))
    wait_until(
        lambda: len(events(sup, "secrets checked")) >= checked + 2, timeout=30, what="checks"
    )
    assert len(events(sup, REQUESTED)) == 1
    assert ecs.deployment() == after
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.lines().count("env API_TOKEN=tok-1") == 1
    assert sup.proc.poll() is None
    text = sup.stderr()
    assert "tok-1" not in text and "tok-2" not in text
    sup.kill(signal.SIGTERM)
    assert sup.wait() == 3


# ----------------------------------------------------------------------------- at start


def _one_line(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    return lines[0]


def test_redeploy_without_metadata_or_service_setting_is_78_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    run = run_agent(tmp_path, at_start(redeploy_env(moto.url, SECRETS_AGENT_LOG_LEVEL="warning")))
    assert run.returncode == 78, run.stderr
    assert not run.ran
    line = _one_line(run.stderr)
    assert "ECS_CONTAINER_METADATA_URI_V4" in line and "SECRETS_AGENT_ECS_SERVICE" in line


def test_a_task_outside_any_service_is_78_at_start(
    moto: MotoServer, boto_client: Any, metadata: TaskMetadataServer, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    ecs = make_service(boto_client, 1, group="family:app")  # a task started by RunTask
    uri = metadata.add(task_document(cluster_arn=ecs.cluster_arn, task_arn=ecs.tasks[0]))
    env = redeploy_env(
        moto.url, ECS_CONTAINER_METADATA_URI_V4=uri, SECRETS_AGENT_LOG_LEVEL="warning"
    )
    run = run_agent(tmp_path, at_start(env))
    assert run.returncode == 78, run.stderr
    assert not run.ran
    line = _one_line(run.stderr)
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
        SECRETS_AGENT_LOG_LEVEL="warning",
    )
    run = run_agent(tmp_path, at_start(env))
    assert run.returncode == 78, run.stderr
    assert not run.ran
    assert "no-such-service" in _one_line(run.stderr)


def test_an_unreachable_metadata_endpoint_is_69_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    from tests.support.moto_server import free_port

    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="t", Type="SecureString")
    env = redeploy_env(
        moto.url,
        ECS_CONTAINER_METADATA_URI_V4=f"http://127.0.0.1:{free_port()}/v4/x",
        SECRETS_AGENT_LOG_LEVEL="warning",
    )
    run = run_agent(tmp_path, at_start(env))
    assert run.returncode == 69, run.stderr
    assert not run.ran
    assert "metadata" in _one_line(run.stderr)


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
    wait_until(lambda: len(events(sup, failed)) >= 2, timeout=30, what=f"warnings: {sup.stderr()}")
    first = events(sup, failed)[0]
    assert first["level"] == "warning"
    assert "ecs:UpdateService" in first["error"] and ecs.service_arn in first["error"]
    assert ecs.deployment() == before
    assert starts(sup) == 1 and sup.proc.poll() is None
    assert not events(sup, REQUESTED)

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
    wait_until(lambda: events(sup, REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
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
    wait_until(lambda: len(events(sup, failed)) >= 2, timeout=30, what=f"warnings: {sup.stderr()}")
    assert "OTHER" in events(sup, failed)[0]["error"]
    assert ecs.deployment() == before
    assert not events(sup, REQUESTED)
    assert starts(sup) == 1 and sup.proc.poll() is None


# ----------------------------------------------------------------------------- a service of 20

FLEET = 20


def _operations(proxy: FaultProxy) -> dict[str, int]:
    """Requests that reached moto, by operation (``AmazonSSM.GetParametersByPath`` -> its name)."""
    out: dict[str, int] = {}
    for target, count in proxy.stats()["by_target"].items():
        name = str(target).rpartition(".")[2]
        out[name] = out.get(name, 0) + int(count)
    return out


def test_twenty_tasks_one_deployment_per_rotation_and_one_check_per_interval(
    moto: MotoServer,
    boto_client: Any,
    metadata: TaskMetadataServer,
    agents: Any,
) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    ecs = make_service(boto_client, FLEET)
    with FaultProxy(moto.url) as proxy:
        fleet = []
        for task_arn in ecs.tasks:
            doc = task_document(
                cluster_arn=ecs.cluster_arn, task_arn=task_arn, service_name=SERVICE
            )
            env = redeploy_env(proxy.url, ECS_CONTAINER_METADATA_URI_V4=metadata.add(doc))
            fleet.append(agents(env, "API_TOKEN", wait=False))
        for sup in fleet:
            try:
                sup.wait_line("ready", timeout=120)
            except AssertionError:
                raise AssertionError(sup.stderr()) from None
        for sup in fleet:
            (start,) = events(sup, "changed secrets will redeploy the service")
            assert start["running"] == FLEET and start["check_every"] == FLEET * INTERVAL

        # Idle: the fleet together checks about once per interval. Each task waits at least
        # 0.85 x 20 intervals between its checks (its first check at a random point of the
        # span), so in any window it checks at most window / (0.85 x 20 x interval) + 1 times,
        # however fast or slow the machine; unstretched, 20 tasks would check ~20 times a second.
        proxy.reset_counters()
        window_start = time.monotonic()
        time.sleep(20)
        idle = _operations(proxy)
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
                return all(len(events(s, REQUESTED)) + len(events(s, EXISTS)) >= n for s in fleet)

            # Every task sees the change within its stretched interval (20 x 1 s, +15 %).
            slow_wait(seen, timeout=120, what=f"every task to see rotation {rotation}")
            ops = _operations(proxy)
            asked = sum(len(events(s, REQUESTED)) for s in fleet)
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
    from tests.support.iam_support import (
        ACCOUNT,
        allows,
        as_list,
        aws_calls,
        checks_for,
        parliament_findings,
        static_problems,
    )

    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    ecs = make_service(boto_client, 1)
    env = redeploy_env(moto.url)
    flags: dict[str, str | None] = {"ecs_cluster": None, "ecs_service": None}
    if named:
        env.update(SECRETS_AGENT_ECS_SERVICE=SERVICE, SECRETS_AGENT_ECS_CLUSTER=CLUSTER)
    else:
        doc = task_document(cluster_arn=ecs.cluster_arn, task_arn=ecs.tasks[0])
        env["ECS_CONTAINER_METADATA_URI_V4"] = metadata.add(doc)
        flags = {"ecs_cluster": CLUSTER, "ecs_service": SERVICE}
    sup = agents(env, "API_TOKEN")
    rotate(boto_client, "tok-2")
    wait_until(lambda: events(sup, REQUESTED), timeout=30, what=f"a deployment: {sup.stderr()}")
    calls = aws_calls(sup.stderr())
    operations = {f"{c['service']}:{c['operation']}" for c in calls}
    assert {"ecs:DescribeServices", "ecs:UpdateService"} <= operations
    assert ("ecs:DescribeTasks" in operations) is not named

    text = iam.render_for_environment(at_start(env), fmt="json", account_id=ACCOUNT, **flags)
    policy = json.loads(text)
    assert parliament_findings(text) == []
    assert static_problems(policy, regions=["us-east-1"]) == []
    checks = [c for call in calls for c in checks_for(call, lambda _: [])]
    denied = [c for c in checks if not allows(policy, c)]
    assert denied == [], denied
    granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    assert granted == {c.action for c in checks}
    service = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/{CLUSTER}/{SERVICE}"
    ecs_resources = {
        r
        for s in policy["Statement"]
        if any(str(a).startswith("ecs:") for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    }
    tasks = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/{CLUSTER}/*"
    assert ecs_resources == ({service} if named else {service, tasks})


def test_iam_policy_for_redeploy_needs_the_service_named(tmp_path: Path) -> None:
    env = redeploy_env("http://127.0.0.1:9")
    run = run_agent(tmp_path, at_start(env), ["iam-policy", "--account-id", "123456789012"])
    assert run.returncode == 78
    assert "--ecs-service" in _one_line(run.stderr)
    ok = run_agent(
        tmp_path,
        at_start(env),
        ["iam-policy", "--account-id", "123456789012", "--ecs-cluster", CLUSTER,
         "--ecs-service", SERVICE],
    )
    assert ok.returncode == 0, ok.stderr
    assert f"service/{CLUSTER}/{SERVICE}" in ok.stdout
