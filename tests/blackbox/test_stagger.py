"""SECRETS_AGENT_RESTART_SPREAD: each task restarts at its own stable offset of the window.

The offset function is checked on its own (stable, within the window, spread evenly); then 20
real supervisors, each told its task ARN by a task metadata server, restart on one rotation,
each after exactly its own offset.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from secrets_agent.supervise.stagger import offset
from tests.conftest import base_env
from tests.support.ecs_metadata import TaskMetadataServer, task_document
from tests.support.moto_server import MotoServer
from tests.support.supervised import SIGNAL_ECHO, Supervised, launch
from tests.support.supervised import rotating_agent_argv as agent_argv

CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
ARNS = [f"arn:aws:ecs:us-east-1:123456789012:task/prod/{i:032x}" for i in range(20)]
SPREAD = 10.0


def test_the_offset_is_stable_and_inside_the_window() -> None:
    for arn in ARNS:
        assert offset(arn, SPREAD) == offset(arn, SPREAD)
        assert 0 <= offset(arn, SPREAD) < SPREAD
    assert offset(ARNS[0], 0) == 0


def test_offsets_of_a_fleet_are_distinct_and_cover_the_window() -> None:
    offsets = sorted(offset(arn, SPREAD) for arn in ARNS)
    assert len(set(offsets)) == len(offsets)
    assert offsets[0] < SPREAD / 4 and offsets[-1] > SPREAD * 3 / 4
    # Over many identities, every tenth of the window gets about a tenth of them.
    many = [offset(f"ip-10-0-{i // 256}-{i % 256}", SPREAD) for i in range(5000)]
    counts = [sum(1 for o in many if k <= o * 10 / SPREAD < k + 1) for k in range(10)]
    assert all(400 <= c <= 600 for c in counts), counts


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).timestamp()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for sup in started:
        sup.close()


def test_twenty_supervisors_restart_each_at_its_own_offset(
    moto: MotoServer, boto_client: Any, tmp_path: Path, fleet: list[Supervised]
) -> None:
    import time

    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="tok-1", Type="SecureString")
    with TaskMetadataServer() as metadata:
        for i, arn in enumerate(ARNS):
            env = base_env(moto.url)
            env.update(
                PARAMETER_STORE_PREFIX="/app/prod",
                # 20 agents checking every 2 s already keep 2 cores busy half the time.
                SECRETS_AGENT_WATCH_INTERVAL="2",
                SECRETS_AGENT_RESTART_SPREAD=str(SPREAD),
                SECRETS_AGENT_STOP_TIMEOUT="5",
                SECRETS_AGENT_LOG_FORMAT="json",
                ECS_CONTAINER_METADATA_URI_V4=metadata.add(
                    task_document(cluster_arn=CLUSTER_ARN, task_arn=arn)
                ),
            )
            out = tmp_path / f"echo-{i}.log"
            command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out), "--env", "API_TOKEN"]
            fleet.append(launch(tmp_path, agent_argv(command), pid1=False, env=env, out=out))
        for sup in fleet:
            sup.wait_line("ready", timeout=120)
    for sup, arn in zip(fleet, ARNS, strict=True):
        (start,) = sup.events("restarts staggered")
        assert start["offset_from"] == "task ARN" and start["identity"] == arn
        assert start["restart_delay"] == round(offset(arn, SPREAD), 3)

    boto_client("ssm").put_parameter(
        Name="/app/prod/api_token", Value="tok-2", Type="SecureString", Overwrite=True
    )
    deadline = time.monotonic() + 120
    # Restarted, and the new command has written its environment (it may start slowly while
    # twenty agents check every second on two CPUs).
    while not all(
        len(s.events("command restarted")) == 1 and s.lines()[-1:] == ["env API_TOKEN=tok-2"]
        for s in fleet
    ):
        assert time.monotonic() < deadline, [s.stderr()[-2000:] for s in fleet][:2]
        time.sleep(0.5)
    restarts = []
    for sup, arn in zip(fleet, ARNS, strict=True):
        assert sup.lines()[-1] == "env API_TOKEN=tok-2", sup.lines()
        (changed,) = sup.events("secrets changed")
        (stopping,) = sup.events("stopping command")
        # Each waited its own offset after it found the change (never less, by construction).
        assert _at(stopping) - _at(changed) >= offset(arn, SPREAD) - 0.01
        restarts.append(_at(stopping))
    span = max(restarts) - min(restarts)
    ordered = sorted(restarts)
    closest = min(b - a for a, b in itertools.pairwise(ordered))
    print(f"\n20 restarts over {span:.1f} s (spread {SPREAD:g} s); closest {closest:.2f} s apart")
    for sup in fleet:
        assert "tok-1" not in sup.stderr() and "tok-2" not in sup.stderr()
