"""Supervise mode against a real moto server: a rotated secret restarts the command with the
new value; nothing changed or a broken change keeps it; ``SECRETS_AGENT_ON_CHANGE=exit`` exits 0.

The agent runs through the real entrypoint with a 1 s interval (tests/support/bin's wrapper lowers
the
30 s floor for tests); the child is signal_echo.py, which reports the variables it was started
with.
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENTRYPOINT, ROOT, base_env, error_line
from tests.support.moto_server import MotoServer
from tests.support.seed import json_secret
from tests.support.supervised import (
    SHORT_INTERVAL_ENTRYPOINT,
    SIGNAL_ECHO,
    Supervised,
    launch,
    rotating_agent_argv,
    wait_until,
)

INTERVAL = 1.0
STOP_TIMEOUT = 3.0
# Two jittered intervals, the stop timeout and a generous margin for a loaded machine.
WITHIN = 2 * INTERVAL * 1.2 + STOP_TIMEOUT + 10


def starts(sup: Supervised) -> int:
    return len([line for line in sup.lines() if line.startswith("ready")])


@pytest.fixture
def agent(moto: MotoServer, tmp_path: Path) -> Iterator[Any]:
    started: list[Supervised] = []

    def start(
        extra_env: dict[str, str], *report: str, stack: int | None = None, **settings: str
    ) -> Supervised:
        env = base_env(moto.url)
        env.update(
            SECRETS_AGENT_WATCH_INTERVAL=str(INTERVAL),
            SECRETS_AGENT_STOP_TIMEOUT=str(STOP_TIMEOUT),
            SECRETS_AGENT_LOG_LEVEL="debug",
            SECRETS_AGENT_LOG_FORMAT="json",
        )
        env.update(settings)
        env.update(extra_env)
        out = tmp_path / f"echo-{len(started)}.log"
        command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out), "--code", "3"]
        for name in report:
            command += ["--env", name]
        sup = launch(
            tmp_path,
            rotating_agent_argv(command),
            pid1=False,
            env=env,
            out=out,
            preexec_fn=None if stack is None else lambda: limit_stack(stack),
        )
        started.append(sup)
        try:
            sup.wait_line("ready", timeout=30)
        except AssertionError:
            raise AssertionError(sup.stderr()) from None
        return sup

    yield start
    for sup in started:
        sup.close()


def limit_stack(size: int) -> None:
    """RLIMIT_STACK for the agent and its command: execve then takes a quarter of it (at least
    128 KiB) for arguments and environment."""
    resource.setrlimit(resource.RLIMIT_STACK, (size, size))


def assert_no_values(sup: Supervised, *values: str) -> None:
    text = sup.stderr()
    for value in values:
        assert value not in text


def test_ssm_parameter_new_version_restarts_with_new_value(agent: Any, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="token-one", Type="SecureString")
    ssm.put_parameter(Name="/app/prod/other", Value="stays", Type="String")
    sup = agent({"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN", "OTHER")
    assert "env API_TOKEN=token-one" in sup.lines()

    ssm.put_parameter(
        Name="/app/prod/api_token", Value="token-two", Type="SecureString", Overwrite=True
    )
    changed = time.monotonic()
    assert sup.wait_line("env API_TOKEN", count=2, timeout=WITHIN) == "env API_TOKEN=token-two"
    assert time.monotonic() - changed < WITHIN
    assert sup.lines().count("env OTHER=stays") == 2
    # The restart stopped the old command with SIGTERM; its exit (3) did not end the agent.
    assert "signal SIGTERM" in sup.lines()
    assert sup.proc.poll() is None
    wait_until(lambda: sup.events("command restarted"), timeout=5, what="restart log")
    assert sup.events("command restarted")[0]["changed"] == ["API_TOKEN"]
    assert_no_values(sup, "token-one", "token-two", "stays")
    assert sup.terminate() == 3


def test_ssm_reference_new_version_restarts(agent: Any, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/shared/smtp_password", Value="smtp-one", Type="SecureString")
    sup = agent({"SMTP_PASSWORD": "ssm:/shared/smtp_password"}, "SMTP_PASSWORD")
    assert "env SMTP_PASSWORD=smtp-one" in sup.lines()
    ssm.put_parameter(
        Name="/shared/smtp_password", Value="smtp-two", Type="SecureString", Overwrite=True
    )
    line = sup.wait_line("env SMTP_PASSWORD", count=2, timeout=WITHIN)
    assert line == "env SMTP_PASSWORD=smtp-two"
    assert_no_values(sup, "smtp-one", "smtp-two")


def test_secrets_manager_new_current_version_restarts(agent: Any, boto_client: Any) -> None:
    sm = boto_client("secretsmanager")
    json_secret(sm, "kptboard/prod/database", {"username": "app", "password": "pw-one"})
    sup = agent(
        {"SECRETS_MANAGER_PREFIX": "kptboard/prod"}, "DATABASE_PASSWORD", "DATABASE_USERNAME"
    )
    assert "env DATABASE_PASSWORD=pw-one" in sup.lines()
    sm.put_secret_value(
        SecretId="kptboard/prod/database",
        SecretString=json.dumps({"username": "app", "password": "pw-two"}),
    )
    line = sup.wait_line("env DATABASE_PASSWORD", count=2, timeout=WITHIN)
    assert line == "env DATABASE_PASSWORD=pw-two"
    assert sup.lines().count("env DATABASE_USERNAME=app") == 2
    wait_until(lambda: sup.events("command restarted"), timeout=5, what="restart log")
    assert sup.events("command restarted")[0]["changed"] == ["DATABASE_PASSWORD"]
    assert_no_values(sup, "pw-one", "pw-two")


def test_nothing_changed_means_no_restart(agent: Any, boto_client: Any) -> None:
    boto_client("ssm").put_parameter(Name="/app/prod/api_token", Value="same", Type="String")
    sup = agent({"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN")
    wait_until(lambda: len(sup.events("secrets checked")) >= 3, timeout=15, what="three checks")
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert not sup.events("command restarted")
    assert sup.terminate() == 3


def test_broken_change_keeps_the_running_command(agent: Any, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="token-one", Type="SecureString")
    sup = agent({"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN")
    # A new parameter that maps to the same variable name: the new environment is invalid.
    ssm.put_parameter(Name="/app/prod/api-token", Value="token-clash", Type="SecureString")
    wait_until(
        lambda: len(sup.events("secrets check failed; command kept")) >= 2,
        timeout=WITHIN,
        what="two failed checks",
    )
    failure = sup.events("secrets check failed; command kept")[0]
    assert "API_TOKEN" in failure["error"] or "api" in failure["error"]
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.proc.poll() is None
    assert_no_values(sup, "token-one", "token-clash")
    # Fixing the data lets the next check pass again, still without a restart.
    ssm.delete_parameter(Name="/app/prod/api-token")
    checked = len(sup.events("secrets checked"))
    wait_until(
        lambda: len(sup.events("secrets checked")) > checked + 1,
        timeout=WITHIN,
        what="successful checks after the fix",
    )
    assert starts(sup) == 1


def test_on_change_exit_stops_the_command_and_exits_zero(agent: Any, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="token-one", Type="SecureString")
    sup = agent(
        {"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN", SECRETS_AGENT_ON_CHANGE="exit"
    )
    ssm.put_parameter(
        Name="/app/prod/api_token", Value="token-two", Type="SecureString", Overwrite=True
    )
    assert sup.wait(timeout=WITHIN) == 0, sup.stderr()
    assert "signal SIGTERM" in sup.lines()
    assert starts(sup) == 1
    assert_no_values(sup, "token-one", "token-two")


def test_rails_restarts_with_rotated_secret_key_base(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """Real Rails (puma, production) under supervise mode: rotating SECRET_KEY_BASE in SSM
    restarts the app, which then serves with the new key."""
    from tests.support.rails_app import RailsApp

    key_one, key_two = "a1" * 64, "b2" * 64
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/kptboard/prod/secret_key_base", Value=key_one, Type="SecureString")
    env = base_env(moto.url)
    env.update(
        PARAMETER_STORE_PREFIX="/kptboard/prod",
        SECRETS_AGENT_WATCH_INTERVAL=str(INTERVAL),
        SECRETS_AGENT_STOP_TIMEOUT="20",
        SECRETS_AGENT_LOG_FORMAT="json",
    )
    app = RailsApp([sys.executable, str(SHORT_INTERVAL_ENTRYPOINT)], env, tmp_path / "rails.log")
    try:
        app.wait_ready()
        first = app.get_json("/secret")
        assert first["secret_key_base_sha256"] == hashlib.sha256(key_one.encode()).hexdigest()
        # Supervised: puma is the agent's child, not the agent itself.
        assert first["pid"] != app.proc.pid

        ssm.put_parameter(
            Name="/kptboard/prod/secret_key_base",
            Value=key_two,
            Type="SecureString",
            Overwrite=True,
        )
        wanted = hashlib.sha256(key_two.encode()).hexdigest()
        seen: list[Any] = []

        def serves_new_key() -> bool:
            try:
                status, body = app.get("/secret")
            except OSError:
                return False  # between the old puma and the new one
            if status == 200:
                seen.append(json.loads(body))
            return bool(seen) and seen[-1]["secret_key_base_sha256"] == wanted

        wait_until(serves_new_key, timeout=90, what=f"the new key: {app.log()}")
        assert seen[-1]["pid"] != first["pid"]
        assert app.proc.poll() is None
        app.proc.send_signal(signal.SIGTERM)
        code = app.stop()
    finally:
        if app.proc.poll() is None:
            app.stop()
    # puma re-raises SIGTERM after a graceful stop: the agent reports it as 128+15.
    assert code in (0, 128 + signal.SIGTERM), app.log()
    log = app.log()
    assert key_one not in log and key_two not in log
    assert '"event":"command restarted"' in log


def test_new_version_with_the_same_value_restarts_nothing(agent: Any, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="same", Type="SecureString")
    sup = agent({"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN")
    ssm.put_parameter(Name="/app/prod/api_token", Value="same", Type="SecureString", Overwrite=True)
    wait_until(
        lambda: any(e.get("same_values") for e in sup.events("secrets checked")),
        timeout=WITHIN,
        what="a check that sees version 2 with the same value",
    )
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()


# -- a new environment that would lose a variable, or not fit execve, keeps the command ----


def refusals(sup: Supervised) -> list[dict[str, Any]]:
    return sup.events("secrets check failed; command kept")


def test_a_deleted_parameter_keeps_the_command_with_its_variable(
    agent: Any, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/api_token", Value="token-one", Type="SecureString")
    ssm.put_parameter(Name="/app/prod/other", Value="stays", Type="SecureString")
    sup = agent({"PARAMETER_STORE_PREFIX": "/app/prod"}, "API_TOKEN", "OTHER")
    ssm.delete_parameter(Name="/app/prod/other")
    # Refused at every check, not once: each interval checks again.
    wait_until(lambda: len(refusals(sup)) >= 2, timeout=WITHIN, what="two refused checks")
    refused = refusals(sup)[0]
    assert refused["level"] == "warning"
    assert refused["removed"] == ["OTHER"]
    assert "OTHER" in refused["error"]
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.proc.poll() is None
    # A rotation while the parameter is gone is refused too: the restart would still lose it.
    ssm.put_parameter(
        Name="/app/prod/api_token", Value="token-two", Type="SecureString", Overwrite=True
    )
    refused_so_far = len(refusals(sup))
    wait_until(
        lambda: len(refusals(sup)) >= refused_so_far + 2,
        timeout=WITHIN,
        what="refusals after the rotation",
    )
    assert starts(sup) == 1
    # Restored: the next check restarts with the complete new environment.
    ssm.put_parameter(Name="/app/prod/other", Value="stays", Type="SecureString")
    assert sup.wait_line("env API_TOKEN", count=2, timeout=WITHIN) == "env API_TOKEN=token-two"
    assert sup.lines().count("env OTHER=stays") == 2
    assert_no_values(sup, "token-one", "token-two", "stays")


@pytest.mark.parametrize("how", ["renamed JSON key", "secret scheduled for deletion"])
def test_a_secret_or_key_that_disappears_keeps_the_command(
    agent: Any, boto_client: Any, how: str
) -> None:
    sm = boto_client("secretsmanager")
    json_secret(sm, "kptboard/prod/database", {"username": "app", "password": "pw-one"})
    sm.create_secret(Name="kptboard/prod/api_token", SecretString="tok-one")
    sup = agent(
        {"SECRETS_MANAGER_PREFIX": "kptboard/prod"},
        "DATABASE_PASSWORD",
        "DATABASE_USERNAME",
        "API_TOKEN",
    )
    if how == "renamed JSON key":
        sm.put_secret_value(
            SecretId="kptboard/prod/database",
            SecretString=json.dumps({"username": "app", "pass": "pw-two"}),
        )
        gone = ["DATABASE_PASSWORD"]
    else:
        sm.delete_secret(SecretId="kptboard/prod/api_token", RecoveryWindowInDays=7)
        gone = ["API_TOKEN"]
    wait_until(lambda: len(refusals(sup)) >= 2, timeout=WITHIN, what="two refused checks")
    assert refusals(sup)[0]["removed"] == gone
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.proc.poll() is None
    assert_no_values(sup, "pw-one", "pw-two", "tok-one")


BIG = 64000  # one Secrets Manager secret holds at most 65536 bytes
STACK = 512 * 1024  # execve then allows the 128 KiB minimum for arguments and environment


def test_a_rotation_too_large_for_execve_keeps_the_running_command(
    agent: Any, boto_client: Any
) -> None:
    """Three variables name the same secret; rotated to 64 KB it gives 192 KB of environment,
    more than execve takes under the stack limit: the old command keeps running."""
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/blob", SecretString="small")
    sm.create_secret(Name="app/token", SecretString="tok-one")
    refs = {
        "BLOB_ONE": "secretsmanager:app/blob",
        "BLOB_TWO": "secretsmanager:app/blob",
        "BLOB_THREE": "secretsmanager:app/blob",
        "TOKEN": "secretsmanager:app/token",
    }
    sup = agent(refs, "TOKEN", "BLOB_ONE", stack=STACK)
    assert "env BLOB_ONE=small" in sup.lines()
    sm.put_secret_value(SecretId="app/blob", SecretString="b" * BIG)
    wait_until(lambda: len(refusals(sup)) >= 2, timeout=WITHIN, what="two refused checks")
    refused = refusals(sup)[0]
    assert "BLOB_ONE" in refused["error"] and "BLOB_TWO" in refused["error"]
    assert "bytes" in refused["error"]
    assert starts(sup) == 1
    assert "signal SIGTERM" not in sup.lines()
    assert sup.proc.poll() is None
    assert "b" * 100 not in sup.stderr()
    # Back to a size that fits: the next check restarts with it.
    sm.put_secret_value(SecretId="app/blob", SecretString="medium")
    assert sup.wait_line("env BLOB_ONE", count=2, timeout=WITHIN) == "env BLOB_ONE=medium"
    assert sup.terminate() == 3


@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_a_first_environment_too_large_for_execve_is_126_naming_the_variables(
    moto: MotoServer, boto_client: Any, tmp_path: Path, mode: str
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/blob", SecretString="b" * BIG)
    env = base_env(moto.url) | {
        "BLOB_ONE": "secretsmanager:app/blob",
        "BLOB_TWO": "secretsmanager:app/blob",
        "BLOB_THREE": "secretsmanager:app/blob",
    }
    if mode == "supervise":
        env["SECRETS_AGENT_WATCH_INTERVAL"] = "60"
    marker = tmp_path / "started"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), *command],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=str(ROOT),
        preexec_fn=lambda: limit_stack(STACK),
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 126, stderr
    assert not marker.exists()
    last = error_line(stderr)
    assert last.startswith("secrets-agent: cannot execute:")
    assert "BLOB_ONE" in last and "BLOB_TWO" in last
    assert "Traceback" not in stderr
    assert "b" * 100 not in stderr
