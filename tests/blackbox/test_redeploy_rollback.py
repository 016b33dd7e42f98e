"""SECRETS_AGENT_ON_CHANGE=redeploy when the value now current is an *older* version.

A rollback moves ``AWSCURRENT`` back to an older version of a secret, or an SSM label back to
an older version of a parameter; the rotation Lambda creates ``AWSPENDING``, and only later
(``finishSecret``) moves ``AWSCURRENT`` to it, maybe after an unrelated deploy. In each case the
version's creation time is older than the service's deployment, yet the running tasks resolved
the other value: a fleet of supervised agents (the real entrypoint, moto's ECS, the fake task
metadata endpoint) must ask for one deployment (two only when two tasks look in the same
instant, the race the README measures), and a task started afterwards (a fresh agent, as ECS
starts one) must resolve the value now current.

And ``UpdateService`` is sent once per decision: an answer lost on its way back is not sent
again by the SDK; the next check looks, finds the deployment the lost request made, and asks
for nothing more. ``UpdateService`` requests are counted as they reach moto, through a proxy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from secrets_agent.supervise.redeploy import CLOCK_MARGIN
from tests.blackbox.test_redeploy import (
    CLUSTER,
    EXISTS,
    REQUESTED,
    SERVICE,
    make_service,
    redeploy_env,
    slow_wait,
    starts,
)
from tests.support.ecs_metadata import TaskMetadataServer
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import Supervised

INTERVAL = 1.0
TASKS = 3
SECRET = "prod/api-token"
PARAMETER = "/app/prod/api_token"


@dataclass
class Case:
    """A source set up with the running value ``running``, and ``change`` making ``current``
    the value a new task resolves."""

    reference: str
    running: str
    current: str
    change: Callable[[], None]


def _awscurrent_moved_back(boto_client: Any) -> Case:
    """The documented rollback: AWSCURRENT back to the version before the rotation."""
    sm = boto_client("secretsmanager")
    v1 = sm.create_secret(Name=SECRET, SecretString="tok-good")["VersionId"]
    v2 = sm.put_secret_value(SecretId=SECRET, SecretString="tok-bad")["VersionId"]

    def change() -> None:
        sm.update_secret_version_stage(
            SecretId=SECRET, VersionStage="AWSCURRENT", MoveToVersionId=v1, RemoveFromVersionId=v2
        )

    return Case(f"secretsmanager:{SECRET}", "tok-bad", "tok-good", change)


def _ssm_label_moved_back(boto_client: Any) -> Case:
    """``ssm:NAME:LABEL``, the label moved back to the version before."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value="tok-good", Type="SecureString")
    ssm.put_parameter(Name=PARAMETER, Value="tok-bad", Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name=PARAMETER, ParameterVersion=2, Labels=["live"])

    def change() -> None:
        ssm.label_parameter_version(Name=PARAMETER, ParameterVersion=1, Labels=["live"])

    return Case(f"ssm:{PARAMETER}:live", "tok-bad", "tok-good", change)


def _rotation_lambda_order(boto_client: Any) -> Case:
    """createSecret makes the AWSPENDING version; a deployment lands for unrelated reasons (the
    service's, made after this; its tasks, the fleet, resolve the old AWSCURRENT);
    finishSecret then moves AWSCURRENT."""
    sm = boto_client("secretsmanager")
    v1 = sm.create_secret(Name=SECRET, SecretString="tok-old")["VersionId"]
    v2 = sm.put_secret_value(
        SecretId=SECRET, SecretString="tok-new", VersionStages=["AWSPENDING"]
    )["VersionId"]

    def change() -> None:
        sm.update_secret_version_stage(
            SecretId=SECRET, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
        )

    return Case(f"secretsmanager:{SECRET}", "tok-old", "tok-new", change)


CASES = {
    "awscurrent-moved-back": _awscurrent_moved_back,
    "ssm-label-moved-back": _ssm_label_moved_back,
    "rotation-lambda-order": _rotation_lambda_order,
}


def _when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).timestamp()


def _decided(sup: Supervised) -> int:
    return len(sup.events(REQUESTED)) + len(sup.events(EXISTS))


@pytest.mark.parametrize("case", list(CASES))
def test_a_rollback_asks_for_one_deployment_and_new_tasks_resolve_the_current_value(
    moto: MotoServer,
    boto_client: Any,
    metadata: TaskMetadataServer,
    agents: Any,
    case: str,
) -> None:
    setup = CASES[case](boto_client)
    # The service's deployment comes after every version: the one that started the fleet.
    time.sleep(1.1)
    ecs = make_service(boto_client, TASKS)
    with FaultProxy(moto.url) as proxy:
        fleet = []
        for uri in ecs.endpoints(metadata):
            env = redeploy_env(
                proxy.url,
                prefix=None,
                API_TOKEN=setup.reference,
                ECS_CONTAINER_METADATA_URI_V4=uri,
            )
            fleet.append(agents(env, "API_TOKEN"))
        for sup in fleet:
            assert sup.lines().count(f"env API_TOKEN={setup.running}") == 1
        # A deployment made now is a deployment after these tasks started, clocks apart or not.
        time.sleep(CLOCK_MARGIN + 1)
        proxy.reset_counters()

        setup.change()
        slow_wait(
            lambda: all(_decided(s) >= 1 for s in fleet),
            timeout=90,
            what="every task to see the change: "
            + " | ".join(s.stderr()[-2000:] for s in fleet),
        )
        ops = proxy.operations()
        requested = [e for s in fleet for e in s.events(REQUESTED)]
        assert ops.get("UpdateService", 0) == len(requested), ops
        # One deployment. Nothing is a lock (README, "One deployment per rotation"): two tasks
        # whose last looks fall in the same instant both ask, and only then; a task that missed
        # a deployment made seconds before would ask seconds apart.
        assert 1 <= len(requested) <= 2, (ops, [s.stderr() for s in fleet])
        if len(requested) == 2:
            first, second = sorted(_when(e) for e in requested)
            assert second - first < 1.0, requested
        for sup in fleet:
            assert starts(sup) == 1 and sup.proc.poll() is None
            assert "signal SIGTERM" not in sup.lines()
            text = sup.stderr()
            assert setup.running not in text and setup.current not in text

        # A task of the new deployment resolves the value now current, and asks for nothing.
        env = redeploy_env(
            proxy.url,
            prefix=None,
            API_TOKEN=setup.reference,
            SECRETS_AGENT_ECS_SERVICE=SERVICE,
            SECRETS_AGENT_ECS_CLUSTER=CLUSTER,
        )
        new = agents(env, "API_TOKEN")
        assert new.lines().count(f"env API_TOKEN={setup.current}") == 1
        checked = len(new.events("secrets checked"))
        slow_wait(
            lambda: len(new.events("secrets checked")) >= checked + 2,
            timeout=60,
            what=f"two checks of the new task: {new.stderr()}",
        )
        assert _decided(new) == 0
        assert proxy.operations().get("UpdateService", 0) == len(requested)


def test_a_lost_update_service_answer_is_not_sent_again(
    moto: MotoServer, boto_client: Any, agents: Any
) -> None:
    """The request reaches ECS and makes a deployment; its answer is cut on the way back. The
    SDK does not send it again; the check fails (command kept), and the next check finds that
    deployment and asks for nothing."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value="tok-1", Type="SecureString")
    ecs = make_service(boto_client, 1)
    lost = FaultPlan(first_n=1, kinds=("truncate",), targets=("UpdateService",))
    with FaultProxy(moto.url, lost) as proxy:
        env = redeploy_env(
            proxy.url,
            SECRETS_AGENT_ECS_SERVICE=SERVICE,
            SECRETS_AGENT_ECS_CLUSTER=CLUSTER,
        )
        sup = agents(env, "API_TOKEN")
        before = ecs.deployment()
        time.sleep(CLOCK_MARGIN + 1)
        ssm.put_parameter(Name=PARAMETER, Value="tok-2", Type="SecureString", Overwrite=True)

        failed = "secrets check failed; command kept"
        slow_wait(
            lambda: sup.events(failed) or sup.events(REQUESTED),
            timeout=60,
            what=f"the decision: {sup.stderr()}",
        )
        assert proxy.operations().get("UpdateService", 0) == 1, proxy.stats()
        assert "UpdateService" in sup.events(failed)[0]["error"]
        slow_wait(lambda: sup.events(EXISTS), timeout=60, what=f"the next look: {sup.stderr()}")
        stats = proxy.stats()
        assert stats["faults_by_target"], stats
        assert proxy.operations().get("UpdateService", 0) == 1, stats
        assert not sup.events(REQUESTED)
        assert ecs.deployment()[0] != before[0]  # the lost request's deployment
        assert starts(sup) == 1 and sup.proc.poll() is None
