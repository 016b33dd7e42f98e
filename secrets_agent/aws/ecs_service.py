"""The ECS service a task belongs to, its deployments, and asking it for a new one.

Used by ``SECRETS_AGENT_ON_CHANGE=redeploy``. The service is found once, at start, so that a
misconfiguration ends the start with 78 rather than surfacing at the first rotation:

1. ``SECRETS_AGENT_ECS_SERVICE`` names it; the cluster is ``SECRETS_AGENT_ECS_CLUSTER``, else
   the task metadata's ``Cluster``, else ECS's ``default``.
2. Else the task metadata endpoint (``ECS_CONTAINER_METADATA_URI_V4``, ``GET ${URI}/task``)
   gives ``Cluster`` and ``TaskARN``, and, on EC2 with a recent container agent,
   ``ServiceName``.
3. Else (Fargate) ``DescribeTasks`` on the task ARN gives its ``group``, ``service:NAME`` for a
   task a service started.

Each call maps its failure to the agent's typed errors, naming the ECS action.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secrets_agent.aws.clients import Clients
from secrets_agent.aws.errors import map_aws_error
from secrets_agent.core import aws_names
from secrets_agent.core.errors import ConfigError, ServiceError
from secrets_agent.core.settings import Settings

METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
#: The longest answer read from the task metadata endpoint (a task of ten containers is ~20 KiB).
_METADATA_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Service:
    """One ECS service: what the ECS calls name, and where it was found."""

    cluster: str  # a name or an ARN: ECS accepts both
    name: str
    region: str | None  # the task's region from its ARN; None: the agent's default region
    task_arn: str | None  # this task, when the metadata endpoint gave it
    found_by: str  # "setting", "metadata" or "DescribeTasks"

    def label(self) -> str:
        return f"ECS service {self.name!r} of cluster {_cluster_name(self.cluster)!r}"


@dataclass(frozen=True)
class ServiceState:
    """What DescribeServices says about the service."""

    arn: str
    running: int
    deployments: tuple[float, ...]  # createdAt of each deployment, seconds since the epoch


def _cluster_name(cluster: str) -> str:
    return cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster


def task_metadata(environ: Mapping[str, str], *, timeout: float) -> Mapping[str, Any] | None:
    """``GET ${ECS_CONTAINER_METADATA_URI_V4}/task``, or None when the variable is unset.

    The endpoint is local to the task (169.254.170.2): read without any proxy.
    """
    uri = (environ.get(METADATA_VARIABLE) or "").strip()
    if not uri:
        return None
    from secrets_agent.aws.bounded_get import get

    url = uri.rstrip("/") + "/task"
    try:  # bounded as a whole: a slow-drip answer cannot hold the start
        body = get(url, timeout=min(5.0, timeout), max_bytes=_METADATA_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise ServiceError(
            f"the task metadata endpoint ({METADATA_VARIABLE}) did not answer "
            f"({type(exc).__name__})",
            hint="SECRETS_AGENT_ON_CHANGE=redeploy reads the task's service from it; "
            "retry, or name the service with SECRETS_AGENT_ECS_SERVICE",
        ) from None
    try:
        task = json.loads(body) if len(body) <= _METADATA_MAX_BYTES else None
    except ValueError:
        task = None
    if not isinstance(task, dict):
        raise ServiceError(
            f"the task metadata endpoint ({METADATA_VARIABLE}) answered something that is not "
            "a JSON object",
            hint="name the service with SECRETS_AGENT_ECS_SERVICE",
        )
    return task


def _text(task: Mapping[str, Any], key: str) -> str | None:
    value = task.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def find_service(settings: Settings, environ: Mapping[str, str], clients: Clients) -> Service:
    """The service to redeploy, or ConfigError (78) saying how to name it."""
    task = task_metadata(environ, timeout=settings.timeout)
    cluster = settings.ecs_cluster or (_text(task, "Cluster") if task else None)
    task_arn = _text(task, "TaskARN") if task else None
    arn = aws_names.parse_arn(task_arn or "", "ecs")
    region = arn[2] if arn else None
    if settings.ecs_service:
        return Service(cluster or "default", settings.ecs_service, region, task_arn, "setting")
    if task is None:
        raise ConfigError(
            "SECRETS_AGENT_ON_CHANGE=redeploy needs the task's ECS service, but "
            f"{METADATA_VARIABLE} is not set (not an ECS task?) and SECRETS_AGENT_ECS_SERVICE "
            "does not name one",
            hint="set SECRETS_AGENT_ECS_SERVICE (and SECRETS_AGENT_ECS_CLUSTER), or use "
            "SECRETS_AGENT_ON_CHANGE=restart",
        )
    if cluster is None or task_arn is None:
        raise ConfigError(
            f"the task metadata ({METADATA_VARIABLE}) gives no Cluster or TaskARN",
            hint="name the service with SECRETS_AGENT_ECS_SERVICE and SECRETS_AGENT_ECS_CLUSTER",
        )
    name = _text(task, "ServiceName")
    if name is not None:
        return Service(cluster, name, region, task_arn, "metadata")
    group = _task_group(clients, cluster, task_arn, region)
    if not group.startswith("service:") or not group.removeprefix("service:"):
        raise ConfigError(
            f"task {task_arn} is not part of an ECS service (its group is {group!r}), so there "
            "is no service to redeploy",
            hint="run it as a service, name one with SECRETS_AGENT_ECS_SERVICE, or use "
            "SECRETS_AGENT_ON_CHANGE=restart",
        )
    return Service(cluster, group.removeprefix("service:"), region, task_arn, "DescribeTasks")


def _task_group(clients: Clients, cluster: str, task_arn: str, region: str | None) -> str:
    client = clients.get("ecs", region)
    try:
        answer = client.describe_tasks(cluster=cluster, tasks=[task_arn])
    except Exception as exc:
        raise map_aws_error(exc, action="ecs:DescribeTasks", resource=task_arn) from exc
    for task in answer.get("tasks") or []:
        if isinstance(task, dict) and isinstance(task.get("group"), str):
            return str(task["group"])
    raise ConfigError(
        f"ecs:DescribeTasks does not know task {task_arn} in cluster {_cluster_name(cluster)!r}",
        hint="name the service with SECRETS_AGENT_ECS_SERVICE and SECRETS_AGENT_ECS_CLUSTER",
    )


_NO_SUCH = {"ClusterNotFoundException", "ServiceNotFoundException"}


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code", "")) if isinstance(error, dict) else ""


def _seconds(value: object) -> float | None:
    stamp = getattr(value, "timestamp", None)
    return float(stamp()) if callable(stamp) else None


def describe(clients: Clients, service: Service) -> ServiceState:
    """DescribeServices: the service's ARN, running task count and deployments' creation times.

    A service ECS does not know, or one that is no longer ACTIVE, is a ConfigError (78).
    """
    client = clients.get("ecs", service.region)
    try:
        answer = client.describe_services(cluster=service.cluster, services=[service.name])
    except Exception as exc:
        if _code(exc) in _NO_SUCH:
            raise ConfigError(
                f"{service.label()} does not exist (ecs:DescribeServices: {_code(exc)})",
                hint="check SECRETS_AGENT_ECS_SERVICE / SECRETS_AGENT_ECS_CLUSTER and the region",
            ) from None
        raise map_aws_error(exc, action="ecs:DescribeServices", resource=service.label()) from exc
    found = [s for s in answer.get("services") or [] if isinstance(s, dict)]
    if not found or found[0].get("status") not in (None, "ACTIVE"):
        status = found[0].get("status") if found else "MISSING"
        raise ConfigError(
            f"{service.label()} is not an active service (ecs:DescribeServices: {status})",
            hint="check SECRETS_AGENT_ECS_SERVICE / SECRETS_AGENT_ECS_CLUSTER and the region",
        )
    entry = found[0]
    created = tuple(
        stamp
        for deployment in entry.get("deployments") or []
        if isinstance(deployment, dict)
        and (stamp := _seconds(deployment.get("createdAt"))) is not None
    )
    running = entry.get("runningCount")
    return ServiceState(
        arn=str(entry.get("serviceArn") or service.name),
        running=running if isinstance(running, int) and running >= 0 else 0,
        deployments=created,
    )


def force_new_deployment(clients: Clients, service: Service, arn: str) -> float | None:
    """UpdateService(forceNewDeployment): the new deployment's createdAt, when ECS says it.

    Sent once, without SDK retries: a request whose answer was lost may have made a deployment,
    and sending it again would make another. The caller's next check looks before it asks."""
    client = clients.get("ecs", service.region, attempts=1)
    try:
        answer = client.update_service(
            cluster=service.cluster, service=service.name, forceNewDeployment=True
        )
    except Exception as exc:
        raise map_aws_error(exc, action="ecs:UpdateService", resource=arn) from exc
    entry = answer.get("service") if isinstance(answer, dict) else None
    deployments = (entry or {}).get("deployments") or []
    times = [t for d in deployments if isinstance(d, dict) if (t := _seconds(d.get("createdAt")))]
    return max(times) if times else None
