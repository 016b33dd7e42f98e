"""secrets_agent.supervise.redeploy's pure parts: which deployment replaces a task, and how far a
task stretches."""

from __future__ import annotations

import time

import pytest
from moto import mock_aws

from secrets_agent.aws.clients import Clients
from secrets_agent.aws.ecs_service import Service
from secrets_agent.core.errors import ServiceError
from secrets_agent.output.logs import Logger
from secrets_agent.supervise.redeploy import (
    CLOCK_MARGIN,
    MAX_STRETCH,
    replacing,
    request_once,
    stretch,
)


def test_only_a_deployment_created_after_the_task_resolved_replaces_it() -> None:
    resolved = 1_000.0
    # The task's own deployment, and any older one, do not replace it.
    assert replacing((900.0, 990.0), resolved) is None
    assert replacing((), resolved) is None
    # One created after the task resolved, by more than the clock margin, does: the newest.
    later = resolved + CLOCK_MARGIN + 1
    assert replacing((990.0, later), resolved) == later


def test_a_deployment_within_the_clock_margin_does_not_replace_the_task() -> None:
    """ECS's clock may run ahead of the task's: a deployment that seems a little newer than
    the task may be the one that started it. Asking once more is the safe side."""
    resolved = 1_000.0
    assert replacing((resolved + 0.5,), resolved) is None
    assert replacing((resolved + CLOCK_MARGIN,), resolved) is None


def test_the_stretch_is_the_running_count_bounded() -> None:
    assert stretch(0) == 1 and stretch(1) == 1
    assert stretch(20) == 20
    assert stretch(100_000) == MAX_STRETCH == 100


def test_a_decision_past_its_deadline_asks_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_bounded gives up on a decision that outlives the timeout, and the next check looks
    again: the abandoned one must not send UpdateService behind its back."""
    for var in ("AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        clients = Clients(
            environ={"AWS_REGION": "us-east-1"}, timeout=5, log=Logger(level="error", fmt="json")
        )
        ecs = clients.get("ecs")
        ecs.create_cluster(clusterName="prod")
        ecs.register_task_definition(
            family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}]
        )
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition="app", desiredCount=1)
        service = Service("prod", "web", None, None, "setting")
        resolved_at = time.time()  # the service's deployment is older than the task
        with pytest.raises(ServiceError, match="nothing asked"):
            request_once(clients, service, resolved_at, pause=0, deadline=time.monotonic() - 1)
        assert clients.by_operation.get("ecs:UpdateService", 0) == 0
        asked, _, _ = request_once(clients, service, resolved_at, pause=0)
        assert asked and clients.by_operation["ecs:UpdateService"] == 1
