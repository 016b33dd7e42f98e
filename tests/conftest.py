"""Shared fixtures: a real moto server on 127.0.0.1 and a runner for the real entrypoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.support.moto_server import MotoServer, start_moto

# Timings belong in bench/: no 200 ms per-example deadline and no too-slow health check, which
# a loaded 2-core CI machine can trip for reasons that have nothing to do with the code.
hypothesis_settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("suite")


def _start_clean() -> None:
    """The processes the tests start inherit the signal state of a container's first process:
    a signal ignored by whatever started pytest (``nohup`` ignores SIGHUP) would reach tini's
    child, which keeps what it inherits, and make the tests that compare the agent with tini
    see a difference that no container has."""
    import signal

    for signum in (
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
        signal.SIGTTIN,
        signal.SIGTTOU,
    ):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


_start_clean()

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "docker-entrypoint.py"
REPORT_ENV = ROOT / "tests" / "support" / "bin" / "report_env.py"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: MotoServer) -> Iterator[MotoServer]:
    """A moto server emptied before each test."""
    moto_server.reset()
    yield moto_server
    moto_server.reset()


#: Test credentials and region, and nothing read from this machine's AWS files or instance.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def base_env(endpoint: str | None) -> dict[str, str]:
    """A clean environment for the agent: no inherited AWS or agent settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **AWS_TEST_ENV,
        "PYTHONPATH": str(ROOT),
    }
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def moto_client(url: str, service: str, region: str = REGION) -> Any:
    """A boto3 client with the test credentials on the moto server at ``url``."""
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def boto_client(moto: MotoServer) -> Any:
    """``boto_client('ssm')``: a boto3 client on the test moto server, for seeding data."""

    def make(service: str, region: str = REGION) -> Any:
        return moto_client(moto.url, service, region)

    return make


def restricted_credentials(
    boto_client: Any, moto: MotoServer, name: str, actions: list[str]
) -> dict[str, str]:
    """Create IAM user ``name`` allowed only ``actions`` (on "*"), turn moto's IAM enforcement
    on, and return the environment variables that make the agent that user."""
    iam = boto_client("iam")
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    moto.enforce_iam()
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str
    child_env: dict[str, str] | None

    @property
    def ran(self) -> bool:
        return self.child_env is not None


def started(run: AgentRun) -> dict[str, str]:
    """The environment the command received from a run that succeeded (exit 0)."""
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None, run.stderr
    return run.child_env


def refused(run: AgentRun, code: int, *words: str) -> str:
    """A run that failed closed: exit ``code``, the command never started, and stderr reports
    one failure (``secrets-agent: ...``) whose line holds each of ``words``; that line."""
    assert run.returncode == code, (run.returncode, run.stderr)
    assert not run.ran
    lines = error_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("secrets-agent: "), run.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def run_agent(
    tmp_path: Path,
    env: Mapping[str, str],
    args: list[str] | None = None,
    *,
    command: list[str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> AgentRun:
    """Run ``docker/docker-entrypoint.py`` (or ``python -m secrets_agent ARGS``) as a subprocess.

    With ``args`` None the entrypoint runs ``report_env.py OUT``, and ``child_env`` is the
    environment the command received (None when it never ran).
    """
    out = tmp_path / f"child-env-{os.urandom(4).hex()}.json"
    if args is None:
        argv = [sys.executable, str(ENTRYPOINT)] + (
            command if command is not None else [sys.executable, str(REPORT_ENV), str(out)]
        )
    else:
        argv = [sys.executable, "-m", "secrets_agent", *args]
    proc = subprocess.run(
        argv,
        env=dict(env),
        capture_output=True,
        timeout=timeout,
        input=stdin.encode() if stdin is not None else None,
        cwd=str(ROOT),
    )
    child_env = None
    if out.exists():
        child_env = json.loads(out.read_text(encoding="utf-8"))
    return AgentRun(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        child_env,
    )


def error_event(stderr: str) -> dict[str, Any]:
    """The JSON error event that ends stderr in JSON log mode (the default off a terminal)."""
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    event = json.loads(lines[-1])
    assert isinstance(event, dict) and event.get("level") == "error", lines[-1]
    return event


def error_line(stderr: str) -> str:
    """The failure as the one text line (``secrets-agent: KIND: MESSAGE; HINT``), whichever
    log format ended stderr: a JSON error event says the same, field by field."""
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if not last.startswith("{"):
        return last
    event = error_event(stderr)
    text = f"secrets-agent: {event['event']}: {event['message']}"
    if event["event"] == "stopped":
        text = f"secrets-agent: {event['message']}"
    from secrets_agent.core.printable import printable

    return printable(text + (f"; {event['hint']}" if event.get("hint") else ""))


def error_lines(stderr: str) -> list[str]:
    """Every failure stderr reports, as text lines: the plain lines, and the JSON error events
    (not the other JSON log lines, nor an error-level metric line, which has no ``kind``)."""
    out = []
    for line in stderr.splitlines():
        if not line.startswith("{"):
            out.append(line)
            continue
        event = json.loads(line)
        if event.get("level") == "error" and "kind" in event and "message" in event:
            out.append(error_line(line))
    return out
