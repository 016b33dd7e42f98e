"""Faults between the agent and AWS: the agent retries within SECRETS_AGENT_TIMEOUT, and either
execs with the complete environment or exits 69 without starting the command.

The real entrypoint runs against the real moto server through ``tests.support.fault_proxy``, which
injects throttling, 500s, connection resets, truncated, empty and garbled bodies and slow
answers. The tests assert what the agent does (a complete environment, or 69 in bounded time,
calls and retries counted), never which exception botocore raises inside: that depends on the
transport's version (urllib3 2.8 hands a truncated body on where 2.7 raised).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENTRYPOINT, ROOT, AgentRun, base_env, error_lines, run_agent
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.logs import events
from tests.support.moto_server import MotoServer

# Interpreter start-up, imports and exit on a loaded 2-core machine, beyond the agent's timeout.
MARGIN = 4.0
FAST_KINDS = ("throttle", "500", "reset", "truncate", "garbled", "empty")
MALFORMED = ("truncate", "garbled", "empty")


@dataclass
class World:
    """Secrets seeded in moto, the agent settings that load them, and the expected variables."""

    moto: MotoServer
    settings: dict[str, str] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)


def seed_world(moto: MotoServer, boto_client: Any, *, secrets_manager: bool = True) -> World:
    world = World(moto)
    ssm = boto_client("ssm")
    # 25 parameters: three GetParametersByPath pages of 10.
    for i in range(25):
        value = f"value {i} with = and\nnewline 'q' \"dq\" $HOME \\ end "
        ssm.put_parameter(Name=f"/rel/app/key_{i:02d}", Value=value, Type="SecureString")
        world.expected[f"KEY_{i:02d}"] = value
    ssm.put_parameter(Name="/rel/refs/db_url", Value="postgres://u:p@db/rel", Type="SecureString")
    world.settings["PARAMETER_STORE_PREFIX"] = "/rel/app"
    world.settings["DB_URL"] = "ssm:/rel/refs/db_url"
    world.expected["DB_URL"] = "postgres://u:p@db/rel"
    if secrets_manager:
        sm = boto_client("secretsmanager")
        sm.create_secret(
            Name="rel/sm/database", SecretString=json.dumps({"username": "u", "password": "pw"})
        )
        sm.create_secret(Name="rel/refs/api", SecretString="api-token-value")
        world.settings["SECRETS_MANAGER_PREFIX"] = "rel/sm"
        world.settings["API_TOKEN"] = "secretsmanager:rel/refs/api"
        world.expected.update(
            {"DATABASE_USERNAME": "u", "DATABASE_PASSWORD": "pw", "API_TOKEN": "api-token-value"}
        )
        sm.list_secrets()
    ssm.get_parameters_by_path(Path="/rel")  # warm moto's backends before timing anything
    return world


@pytest.fixture
def world(moto: MotoServer, boto_client: Any) -> World:
    return seed_world(moto, boto_client)


@pytest.fixture
def ssm_world(moto: MotoServer, boto_client: Any) -> World:
    return seed_world(moto, boto_client, secrets_manager=False)


@dataclass
class Outcome:
    run: AgentRun
    seconds: float
    stats: dict[str, Any]

    def events(self) -> list[dict[str, Any]]:
        return events(self.run.stderr)

    def event(self, name: str) -> dict[str, Any]:
        found = events(self.run.stderr, name)
        assert len(found) == 1, self.run.stderr
        return found[0]

    def error_lines(self) -> list[str]:
        return error_lines(self.run.stderr)


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as p:
        yield p


def run_through(
    proxy: FaultProxy,
    world: World,
    tmp_path: Path,
    plan: FaultPlan,
    *,
    timeout: float,
    args: list[str] | None = None,
    attempts: int | None = None,
) -> Outcome:
    proxy.set_plan(plan)
    proxy.reset_counters()
    env = base_env(proxy.url)
    env.update(world.settings)
    if attempts is not None:
        env["AWS_MAX_ATTEMPTS"] = str(attempts)
    env["SECRETS_AGENT_TIMEOUT"] = f"{timeout:g}"
    env["SECRETS_AGENT_LOG_FORMAT"] = "json"
    started = time.monotonic()
    run = run_agent(tmp_path, env, args, timeout=timeout + 60)
    return Outcome(run, time.monotonic() - started, proxy.stats())


def assert_complete(outcome: Outcome, world: World) -> None:
    run = outcome.run
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    got = {k: run.child_env.get(k) for k in world.expected}
    assert got == world.expected


def assert_failed_closed(outcome: Outcome, *, code: int = 69) -> str:
    """Not started, exit ``code``, exactly one plain stderr line that says what failed."""
    run = outcome.run
    assert run.child_env is None, "the command started although resolution failed"
    assert run.returncode == code, run.stderr
    lines = outcome.error_lines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("secrets-agent: "), lines[0]
    assert "Traceback" not in run.stderr
    return lines[0]


def assert_retries_logged(outcome: Outcome) -> None:
    """Every faulted attempt was retried, and the log says how many."""
    done = outcome.event("secrets resolved")
    assert done["retries"] == outcome.stats["faults"]
    assert done["calls"] + done["retries"] == outcome.stats["requests"]


# -- transient faults: complete environment -------------------------------------------------


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_transient_faults_of_each_kind_end_in_a_complete_environment(
    proxy: FaultProxy, world: World, tmp_path: Path, kind: str
) -> None:
    plan = FaultPlan(first_n=3, kinds=(kind,))
    outcome = run_through(proxy, world, tmp_path, plan, timeout=30)
    assert outcome.stats["faults"] == 3
    assert_complete(outcome, world)
    assert_retries_logged(outcome)


def test_slow_answers_within_the_read_timeout_are_waited_for(
    proxy: FaultProxy, ssm_world: World, tmp_path: Path
) -> None:
    plan = FaultPlan(first_n=2, kinds=("slow",), slow_seconds=1.5)
    outcome = run_through(proxy, ssm_world, tmp_path, plan, timeout=30)
    assert_complete(outcome, ssm_world)
    assert outcome.event("secrets resolved")["retries"] == 0


def test_a_hanging_answer_is_cut_by_the_read_timeout_and_retried(
    proxy: FaultProxy, ssm_world: World, tmp_path: Path
) -> None:
    """With the default 30 s budget one request that never answers costs one read timeout
    (10 s), and the retry still completes the environment."""
    plan = FaultPlan(first_n=1, kinds=("slow",), slow_seconds=25, targets=("GetParametersByPath",))
    outcome = run_through(proxy, ssm_world, tmp_path, plan, timeout=30)
    assert_complete(outcome, ssm_world)
    assert_retries_logged(outcome)
    assert outcome.seconds < 30 + MARGIN


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_mixed_faults_at_30_percent_end_in_a_complete_environment(
    proxy: FaultProxy, world: World, tmp_path: Path, seed: int
) -> None:
    plan = FaultPlan(rate=0.3, kinds=FAST_KINDS, seed=seed)
    outcome = run_through(proxy, world, tmp_path, plan, timeout=30)
    assert_complete(outcome, world)
    assert_retries_logged(outcome)


# -- persistent faults: 69 within the timeout, nothing started ------------------------------


@pytest.mark.parametrize("kind", [*FAST_KINDS, "slow"])
def test_persistent_faults_exit_69_within_the_timeout(
    proxy: FaultProxy, world: World, tmp_path: Path, kind: str
) -> None:
    timeout = 3.0
    plan = FaultPlan(rate=1.0, kinds=(kind,), slow_seconds=60)
    outcome = run_through(proxy, world, tmp_path, plan, timeout=timeout)
    line = assert_failed_closed(outcome)
    assert outcome.seconds < timeout + MARGIN
    assert "AWS unavailable" in line
    assert "SECRETS_AGENT_TIMEOUT" in line
    # The retries made before giving up are reported.
    match = re.search(r"(\d+) AWS calls, (\d+) retries", line)
    assert match is not None, line
    if kind != "slow":
        assert int(match[2]) > 0


@pytest.mark.parametrize(
    ("target", "after"),
    [
        ("GetParametersByPath", 1),  # page 1 of 3 arrives, pages 2 and 3 never do
        ("GetParametersByPath", 2),  # only the last page fails
        ("GetParameters", 0),  # the ssm: reference
        ("BatchGetSecretValue", 0),  # the Secrets Manager prefix
        ("GetSecretValue", 0),  # the secretsmanager: reference
    ],
)
def test_one_failing_request_fails_everything(
    proxy: FaultProxy, world: World, tmp_path: Path, target: str, after: int
) -> None:
    plan = FaultPlan(rate=1.0, kinds=("500",), targets=(target,), after=after)
    outcome = run_through(proxy, world, tmp_path, plan, timeout=2)
    assert outcome.stats["faults_by_target"], "the plan hit nothing: the test proves nothing"
    assert_failed_closed(outcome)
    assert outcome.seconds < 2 + MARGIN


@pytest.mark.parametrize("kind", MALFORMED)
@pytest.mark.parametrize(
    ("target", "after"),
    [
        ("GetParametersByPath", 1),
        ("GetParameters", 0),
        ("BatchGetSecretValue", 0),
        ("GetSecretValue", 0),
    ],
)
def test_a_malformed_answer_is_retried_not_taken_as_an_empty_page(
    proxy: FaultProxy, world: World, tmp_path: Path, target: str, after: int, kind: str
) -> None:
    """A 2xx answer whose body is cut short, empty or not JSON. botocore alone parses the last
    two as an empty result, which ended the path load after page 1 and started the command with
    10 of 25 variables; the agent retries it as it retries a dropped connection."""
    plan = FaultPlan(first_n=2, after=after, kinds=(kind,), targets=(target,))
    outcome = run_through(proxy, world, tmp_path, plan, timeout=30)
    assert outcome.stats["faults"] == 2
    assert_complete(outcome, world)
    assert_retries_logged(outcome)


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_answer_on_every_attempt_is_69_naming_the_operation(
    proxy: FaultProxy, ssm_world: World, tmp_path: Path, kind: str
) -> None:
    """Every attempt of page 2 is malformed: botocore's attempts run out before the budget does,
    and the one line names the operation and what was wrong, never the body."""
    plan = FaultPlan(rate=1.0, after=1, kinds=(kind,), targets=("GetParametersByPath",))
    env_timeout = 120.0
    outcome = run_through(
        proxy, ssm_world, tmp_path, plan, timeout=env_timeout, args=None, attempts=3
    )
    line = assert_failed_closed(outcome)
    # The wording depends on how the transport reports the fault (urllib3 before 2.8 raises on a
    # truncated body); the operation is named either way.
    assert "GetParametersByPath" in line, line
    assert outcome.stats["faults"] == 3  # the agent's attempts, each retried
    assert outcome.seconds < env_timeout


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_a_failing_page_is_retried_not_skipped(
    proxy: FaultProxy, ssm_world: World, tmp_path: Path, kind: str
) -> None:
    """Page 2 of 3 fails twice; the pages after it still arrive and nothing is lost."""
    plan = FaultPlan(first_n=2, after=1, kinds=(kind,), targets=("GetParametersByPath",))
    outcome = run_through(proxy, ssm_world, tmp_path, plan, timeout=30)
    assert outcome.stats["faults"] == 2
    assert_complete(outcome, ssm_world)
    assert_retries_logged(outcome)


@pytest.mark.parametrize("subcommand", [["env"], ["env", "--reveal"], ["check"]])
def test_env_and_check_print_nothing_when_resolution_fails(
    proxy: FaultProxy, world: World, tmp_path: Path, subcommand: list[str]
) -> None:
    plan = FaultPlan(rate=1.0, kinds=("500",), targets=("GetParameters",))
    outcome = run_through(proxy, world, tmp_path, plan, timeout=2, args=subcommand)
    assert outcome.run.stdout == ""
    assert outcome.run.returncode == 69
    assert len(outcome.error_lines()) == 1


@pytest.mark.parametrize("subcommand", [["env"], ["check"]])
def test_env_and_check_are_complete_through_faults(
    proxy: FaultProxy, world: World, tmp_path: Path, subcommand: list[str]
) -> None:
    plan = FaultPlan(first_n=4, kinds=FAST_KINDS)
    outcome = run_through(proxy, world, tmp_path, plan, timeout=30, args=subcommand)
    assert outcome.run.returncode == 0, outcome.run.stderr
    names = {re.split(r"[=\s]", line, maxsplit=1)[0] for line in outcome.run.stdout.splitlines()}
    assert set(world.expected) <= names
    assert_retries_logged(outcome)


def test_a_refused_connection_exits_69_within_the_timeout(world: World, tmp_path: Path) -> None:
    """Nothing listens on the endpoint: connection errors are retried, then 69."""
    from tests.support.moto_server import free_port

    env = base_env(f"http://127.0.0.1:{free_port()}")
    env.update(world.settings)
    env["SECRETS_AGENT_TIMEOUT"] = "3"
    started = time.monotonic()
    run = run_agent(tmp_path, env)
    outcome = Outcome(run, time.monotonic() - started, {})
    line = assert_failed_closed(outcome)
    assert outcome.seconds < 3 + MARGIN
    assert "AWS unavailable" in line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_a_fetch_stuck_in_backoff(
    proxy: FaultProxy, world: World, tmp_path: Path, signum: int
) -> None:
    """ECS stops a task whose agent is still retrying: it must go at once, not after the
    30 s budget, and start nothing."""
    proxy.set_plan(FaultPlan(rate=1.0, kinds=("throttle",)))
    env = base_env(proxy.url)
    env.update(world.settings)
    env["SECRETS_AGENT_LOG_FORMAT"] = "json"
    marker = tmp_path / "command-started"
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "/bin/touch", str(marker)],
        env=env,
        cwd=str(ROOT),
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while proxy.stats()["faults"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.stats()["faults"] >= 2, "the agent never reached the throttled service"
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    # "At once" against the 30 s budget: a generous bound, not a latency figure.
    assert time.monotonic() - sent < 10
    assert proc.returncode == 128 + signum, err
    assert not marker.exists()
    assert b"Traceback" not in err


# -- KMS through the Encryption SDK ------------------------------------------------------------


@pytest.fixture
def aesdk_world(moto: MotoServer, boto_client: Any, tmp_path: Path) -> World:
    key = str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])
    env = base_env(moto.url)
    world = World(moto)
    for name in ("SEALED_ONE", "SEALED_TWO"):
        plaintext = f"plaintext of {name}"
        args = ["encrypt", "--key-id", key, "--name", name]
        run = run_agent(tmp_path, env, args, stdin=plaintext)
        assert run.returncode == 0, run.stderr
        world.settings[name] = run.stdout.strip()
        world.expected[name] = plaintext
    world.settings["SECRETS_AGENT_KMS_KEY_ARNS"] = key
    return world


@pytest.mark.parametrize("kind", [*MALFORMED, "500", "reset"])
def test_kms_decrypt_through_the_sdk_retries_transient_faults(
    proxy: FaultProxy, aesdk_world: World, tmp_path: Path, kind: str
) -> None:
    plan = FaultPlan(first_n=1, kinds=(kind,), targets=("Decrypt",))
    outcome = run_through(proxy, aesdk_world, tmp_path, plan, timeout=30)
    assert outcome.stats["faults"] == 1
    assert_complete(outcome, aesdk_world)
    assert outcome.stats["by_target"]["TrentService.Decrypt"] == 3  # two values, one retry


@pytest.mark.parametrize("kind", MALFORMED)
def test_kms_decrypt_malformed_on_every_attempt_is_69(
    proxy: FaultProxy, aesdk_world: World, tmp_path: Path, kind: str
) -> None:
    plan = FaultPlan(rate=1.0, kinds=(kind,), targets=("Decrypt",))
    outcome = run_through(proxy, aesdk_world, tmp_path, plan, timeout=60)
    line = assert_failed_closed(outcome)
    assert "Decrypt" in line, line
    # 3 attempts per value (the SDK's KMS client); the two values are decrypted side by side.
    assert outcome.stats["faults"] in (3, 6)
