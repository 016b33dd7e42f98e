"""No leak, anywhere: a canary secret through every source and every subcommand at debug level,
and through every failure; it appears in no log line, error, traceback or ``env`` output
without ``--reveal``.

Every value seeded here holds the canary. ``--reveal`` and the child's environment are the
positive controls: they prove the canary really went through the agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, AgentRun, base_env, run_agent
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import SHORT_INTERVAL_ENTRYPOINT

ACCOUNT = "123456789012"  # moto's
HEX = os.urandom(12).hex()
CANARY = "cAnArY" + HEX
# Pieces of the canary: a value cut short (a truncated body, a shortened repr) still shows.
PIECES = [CANARY, *(HEX[i : i + 8] for i in range(0, len(HEX), 8))]


def leaks(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


def assert_no_leak(run: AgentRun, *, stdout_may_reveal: bool = False) -> None:
    assert not leaks(run.stderr), run.stderr
    if not stdout_may_reveal:
        assert not leaks(run.stdout), run.stdout
    assert "Traceback" not in run.stderr


@dataclass
class World:
    moto: MotoServer
    key_arn: str
    settings: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def env(self, endpoint: str | None = None, **extra: str) -> dict[str, str]:
        env = base_env(endpoint or self.moto.url)
        env.update(
            SECRETS_AGENT_LOG_LEVEL="debug",
            SECRETS_AGENT_LOG_FORMAT="json",
            SECRETS_AGENT_KMS_KEY_ARNS=self.key_arn,
        )
        env.update(self.settings)
        env.update(extra)
        return env


def encrypt(tmp_path: Path, moto: MotoServer, key: str, name: str, plaintext: str) -> str:
    env = base_env(moto.url) | {"SECRETS_AGENT_LOG_LEVEL": "debug"}
    run = run_agent(tmp_path, env, ["encrypt", "--key-id", key, "--name", name], stdin=plaintext)
    assert run.returncode == 0, run.stderr
    assert_no_leak(run)
    return run.stdout.strip()


def seed(moto: MotoServer, boto_client: Any, tmp_path: Path) -> World:
    """The canary in every source the agent reads, every form of reference, and aesdk."""
    ssm, sm = boto_client("ssm"), boto_client("secretsmanager")
    key = str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])
    world = World(moto, key)
    with ThreadPoolExecutor(2) as pool:  # two agent processes: run them side by side
        sealed = pool.submit(encrypt, tmp_path, moto, key, "SEALED", CANARY + "-sealed")
        aesdk = pool.submit(encrypt, tmp_path, moto, key, "AESDK_TOKEN", CANARY + "-aesdk")
    # SSM path mode: a SecureString, a String, and an aesdk: value loaded from the prefix.
    ssm.put_parameter(Name="/can/app/secret_key_base", Value=CANARY + "-path", Type="SecureString")
    ssm.put_parameter(Name="/can/app/plain", Value=CANARY + "-plain", Type="String")
    ssm.put_parameter(Name="/can/app/sealed", Value=sealed.result(), Type="SecureString")
    # References: ssm by name, by version, by ARN; Secrets Manager by name, JSON key, ARN.
    ssm.put_parameter(Name="/can/ref/db", Value=CANARY + "-ref", Type="SecureString")
    sm.create_secret(Name="can/sm/text", SecretString=CANARY + "-sm")
    sm.create_secret(Name="can/sm/db", SecretString=json.dumps({"password": CANARY + "-json"}))
    api = sm.create_secret(Name="can/ref/api", SecretString=json.dumps({"token": CANARY + "-api"}))
    world.settings = {
        "PARAMETER_STORE_PREFIX": "/can/app",
        "SECRETS_MANAGER_PREFIX": "can/sm",
        "REF_BY_NAME": "ssm:/can/ref/db",
        "REF_BY_VERSION": "ssm:/can/ref/db:1",
        "REF_BY_ARN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/can/ref/db",
        "SM_BY_NAME": "secretsmanager:can/ref/api",
        "SM_BY_KEY": "secretsmanager:can/ref/api:token",
        "SM_BY_ARN": f"{api['ARN']}:token:AWSCURRENT:",
        "AESDK_TOKEN": aesdk.result(),
    }
    world.names = {
        "SECRET_KEY_BASE",
        "PLAIN",
        "TEXT",
        "SEALED",
        "DB_PASSWORD",
        *(k for k in world.settings if not k.endswith("_PREFIX")),
    }
    ssm.get_parameters_by_path(Path="/can")  # warm moto
    return world


@pytest.fixture
def world(moto: MotoServer, boto_client: Any, tmp_path: Path) -> World:
    return seed(moto, boto_client, tmp_path)


def loaded_everything(run: AgentRun, world: World) -> None:
    """Positive control: the child got the canary in every variable."""
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    for name in world.names:
        assert CANARY in run.child_env[name], name


# -- every source, every subcommand, at debug level ---------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_exec_at_debug_level(tmp_path: Path, world: World, log_format: str) -> None:
    run = run_agent(tmp_path, world.env(SECRETS_AGENT_LOG_FORMAT=log_format))
    loaded_everything(run, world)
    assert_no_leak(run)
    assert "secrets resolved" in run.stderr  # the debug log really ran


def test_name_prefix_mode_at_debug_level(tmp_path: Path, world: World, boto_client: Any) -> None:
    boto_client("ssm").put_parameter(
        Name="can-rails.api.key", Value=CANARY + "-flat", Type="SecureString"
    )
    run = run_agent(tmp_path, world.env(PARAMETER_STORE_PREFIX="can-rails"))
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and CANARY in run.child_env["API_KEY"]
    assert_no_leak(run)


@pytest.mark.parametrize("override", ["false", "true"])
def test_an_inherited_value_is_not_logged(tmp_path: Path, world: World, override: str) -> None:
    env = world.env(SECRETS_AGENT_OVERRIDE=override, SECRET_KEY_BASE=CANARY + "-inherited")
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert_no_leak(run)


@pytest.mark.parametrize("fmt", ["dotenv", "json", "shell"])
def test_env_without_reveal_prints_no_value(tmp_path: Path, world: World, fmt: str) -> None:
    run = run_agent(tmp_path, world.env(), ["env", "--format", fmt])
    assert run.returncode == 0, run.stderr
    assert_no_leak(run)
    for name in world.names:
        assert name in run.stdout


@pytest.mark.parametrize("fmt", ["dotenv", "json", "shell"])
def test_env_with_reveal_prints_values_on_stdout_only(
    tmp_path: Path, world: World, fmt: str
) -> None:
    run = run_agent(tmp_path, world.env(), ["env", "--format", fmt, "--reveal"])
    assert run.returncode == 0, run.stderr
    assert CANARY in run.stdout  # the positive control
    assert_no_leak(run, stdout_may_reveal=True)


def test_check(tmp_path: Path, world: World) -> None:
    run = run_agent(tmp_path, world.env(SECRET_KEY_BASE=CANARY + "-kept"), ["check"])
    assert run.returncode == 0, run.stderr
    assert_no_leak(run)
    for name in world.names:
        assert name in run.stdout


@pytest.mark.parametrize("fmt", ["json", "terraform"])
def test_iam_policy(tmp_path: Path, world: World, fmt: str) -> None:
    args = ["iam-policy", "--format", fmt, "--kms-key-arn", world.key_arn]
    if fmt == "json":
        args += ["--account-id", ACCOUNT]
    # iam-policy reads no AWS service, only its environment: the canary must be there too,
    # or this check could never fail.
    run = run_agent(tmp_path, world.env(SECRET_KEY_BASE=CANARY + "-inherited"), args)
    assert run.returncode == 0, run.stderr
    assert_no_leak(run)


def test_encrypt_with_a_bad_key_does_not_echo_stdin(tmp_path: Path, world: World) -> None:
    bad_key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    run = run_agent(
        tmp_path,
        world.env(),
        ["encrypt", "--key-id", bad_key, "--name", "X"],
        stdin=CANARY,
    )
    assert run.returncode != 0
    assert_no_leak(run)


def test_supervise_mode_and_a_changed_secret(
    tmp_path: Path, world: World, boto_client: Any
) -> None:
    """Supervise mode at debug level: start, detect a change, restart; the log names the
    change, never the old or the new value."""
    env = world.env(
        SECRETS_AGENT_WATCH_INTERVAL="0.5",
        SECRETS_AGENT_ON_CHANGE="exit",
        SECRETS_AGENT_STOP_TIMEOUT="5",
    )
    started = tmp_path / "sleeper.pid"
    sleeper = [
        sys.executable,
        "-c",
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
        str(started),
    ]
    proc = subprocess.Popen(
        [sys.executable, str(SHORT_INTERVAL_ENTRYPOINT), *sleeper],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Rotate only once the command runs with the first value: a rotation before the
        # first load would leave nothing to detect.
        deadline = time.monotonic() + 30
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the command never started"
        boto_client("ssm").put_parameter(
            Name="/can/app/secret_key_base",
            Value=CANARY + "-rotated",
            Type="SecureString",
            Overwrite=True,
        )
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if started.exists():  # the agent was killed, or the rotation never stopped the sleeper
            pid = started.read_text()
            try:
                if str(started).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    run = AgentRun(proc.returncode, out.decode(), err.decode(), None)
    assert proc.returncode == 0, run.stderr
    assert "secrets changed" in run.stderr
    assert_no_leak(run)


# -- every failure ------------------------------------------------------------------------


def put(boto_client: Any, name: str, value: str) -> dict[str, str]:
    """Seed an SSM parameter; no extra setting."""
    boto_client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return {}


def secret(boto_client: Any, name: str, value: str, **extra: str) -> dict[str, str]:
    """Seed a secret; return the extra settings that go with it."""
    boto_client("secretsmanager").create_secret(Name=name, SecretString=value)
    return extra


FAILURES: dict[str, Any] = {
    # name -> (seed(boto_client, world) -> extra env, expected exit code)
    "collision": (lambda b, w: put(b, "/can/app/secret.key.base", CANARY + "-2"), 65),
    "protected-name": (lambda b, w: put(b, "/can/app/ld_preload", CANARY), 65),
    "protected-reference": (lambda b, w: {"LD_PRELOAD": "ssm:/can/ref/db"}, 65),
    "nul-ssm": (lambda b, w: put(b, "/can/app/nul", CANARY + "\x00" + CANARY), 65),
    "nul-sm-json": (
        lambda b, w: secret(b, "can/sm/nul", json.dumps({"k": CANARY + "\x00"})),
        65,
    ),
    "nested-json": (
        lambda b, w: secret(b, "can/sm/nested", json.dumps({"k": {"x": CANARY}})),
        65,
    ),
    "array-json": (lambda b, w: secret(b, "can/sm/arr", json.dumps({"k": [CANARY]})), 65),
    "duplicate-json-key": (
        lambda b, w: secret(b, "can/sm/dup", f'{{"k": "{CANARY}", "k": "{CANARY}"}}'),
        65,
    ),
    "json-key-missing": (lambda b, w: {"X": "secretsmanager:can/ref/api:nokey"}, 66),
    "json-key-into-text": (lambda b, w: {"X": "secretsmanager:can/sm/text:token"}, 65),
    "json-key-into-broken-json": (
        lambda b, w: secret(b, "can/ref/broken", "{" + CANARY, X="secretsmanager:can/ref/broken:k"),
        65,
    ),
    "reference-to-nothing": (lambda b, w: {"X": "ssm:/can/ref/nothing"}, 66),
    "aesdk-moved-to-another-variable": (lambda b, w: {"OTHER": w.settings["AESDK_TOKEN"]}, 65),
    "aesdk-key-not-allowed": (
        lambda b, w: {"SECRETS_AGENT_KMS_KEY_ARNS": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/other"},
        65,
    ),
    "aesdk-corrupted": (
        lambda b, w: {"AESDK_TOKEN": w.settings["AESDK_TOKEN"][:-12] + "AAAAAAAAAAAA"},
        65,
    ),
    "bad-setting": (lambda b, w: {"SECRETS_AGENT_TIMEOUT": CANARY}, 78),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failures_name_things_never_values(
    tmp_path: Path, world: World, boto_client: Any, failure: str
) -> None:
    make, code = FAILURES[failure]
    extra = make(boto_client, world)
    run = run_agent(tmp_path, world.env(**extra))
    assert run.returncode == code, run.stderr
    assert not run.ran
    assert_no_leak(run)


def test_non_json_warning_names_the_secret_only(
    tmp_path: Path, world: World, boto_client: Any
) -> None:
    secret(boto_client, "can/sm/almost", "{" + CANARY + "}")
    run = run_agent(tmp_path, world.env())
    assert run.returncode == 0, run.stderr
    assert "can/sm/almost" in run.stderr  # the warning names it
    assert_no_leak(run)


def test_an_environment_too_large_for_execve(
    tmp_path: Path, world: World, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    for i in range(270):
        ssm.put_parameter(
            Name=f"/can/app/big_{i:03d}",
            Value=(CANARY * 300)[:8000],
            Type="SecureString",
            Tier="Advanced",
        )
    run = run_agent(tmp_path, world.env())
    assert run.returncode == 126, run.stderr
    assert_no_leak(run)


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as p:
        yield p


@pytest.mark.parametrize(
    "kind", ["throttle", "500", "reset", "truncate", "slow", "garbled", "empty"]
)
@pytest.mark.parametrize("persistent", [False, True], ids=["transient", "persistent"])
def test_faults_through_the_proxy(
    tmp_path: Path, world: World, proxy: FaultProxy, kind: str, persistent: bool
) -> None:
    """Truncated and garbled answers carry part of the canary back to the agent."""
    plan = (
        FaultPlan(rate=1.0, kinds=(kind,), slow_seconds=30)
        if persistent
        else FaultPlan(first_n=2, kinds=(kind,), slow_seconds=1)
    )
    proxy.set_plan(plan)
    run = run_agent(tmp_path, world.env(proxy.url, SECRETS_AGENT_TIMEOUT="3"))
    if persistent:
        assert run.returncode == 69, run.stderr
        assert not run.ran
    else:
        loaded_everything(run, world)
    assert_no_leak(run)
