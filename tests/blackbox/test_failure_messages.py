"""A team's own mistakes, and what the failure says: through the real entrypoint (and
``python -m secrets_agent``) against a moto server.

- ``encrypt``: no region is 78, empty input is refused, its help and hints say where it runs and
  what ``--key-id`` takes, an unknown key names the region searched.
- A not-found hint names the region the client searched (and no longer asks for a name prefix
  without a trailing ``.``, which works); a Secrets Manager 77 names the secret's ARN pattern.
- In JSON log mode the last line is one JSON error event (level, exit code, kind, message, hint);
  in text mode it stays one text line.
- 69 names the endpoint host and what went wrong last there: refused, timed out, TLS, DNS,
  throttled, and points at a NAT gateway or VPC endpoints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ROOT,
    AgentRun,
    base_env,
    error_event,
    error_line,
    restricted_credentials,
    run_agent,
)
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer, free_port

CANARY = "cAnArY-7d41c2-never-in-output"


def json_env(endpoint: str | None) -> dict[str, str]:
    return base_env(endpoint) | {"SECRETS_AGENT_LOG_FORMAT": "json"}


def refused(run: AgentRun, code: int) -> dict[str, Any]:
    """The run failed with ``code``, the command never ran, and the last line says why."""
    assert run.returncode == code, run.stderr
    assert not run.ran
    assert CANARY not in run.stderr and CANARY not in run.stdout
    assert "Traceback" not in run.stderr
    return error_event(run.stderr)


def make_key(boto_client: Any) -> str:
    return str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])


def encrypt(
    env: dict[str, str], key: str, stdin: bytes, name: str = "TOKEN"
) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "secrets_agent", "encrypt", "--key-id", key, "--name", name]
    return subprocess.run(argv, env=env, input=stdin, capture_output=True, cwd=ROOT, timeout=60)


# -- encrypt ------------------------------------------------------------------------------------


def test_encrypt_without_a_region_is_a_configuration_error(moto: MotoServer) -> None:
    env = json_env(moto.url)
    del env["AWS_DEFAULT_REGION"]
    proc = encrypt(env, "alias/app", CANARY.encode())
    assert proc.returncode == 78, proc.stderr
    assert proc.stdout == b""
    event = error_event(proc.stderr.decode())
    assert event["kind"] == "config" and "AWS_REGION" in event["hint"]


def test_encrypt_refuses_empty_input(moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    proc = encrypt(json_env(moto.url), key, b"", name="EMPTY")
    assert proc.returncode == 65, proc.stderr
    assert proc.stdout == b""
    event = error_event(proc.stderr.decode())
    assert "EMPTY" in event["message"] and "empty" in event["message"]


def test_encrypt_help_says_where_it_runs_and_what_key_id_takes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "secrets_agent", "encrypt", "--help"],
        env=base_env(None),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0
    help_text = " ".join(proc.stdout.split())
    assert "kms:GenerateDataKey" in help_text
    assert "workstation or CI" in help_text
    for form in ("key ARN", "key id", "alias"):
        assert form in help_text


def test_encrypt_with_an_alias(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    boto_client("kms").create_alias(AliasName="alias/app", TargetKeyId=key)
    proc = encrypt(json_env(moto.url), "alias/app", CANARY.encode(), name="TOKEN")
    assert proc.returncode == 0, proc.stderr
    value = proc.stdout.decode().strip()
    env = json_env(moto.url) | {"SECRETS_AGENT_KMS_KEY_ARNS": key, "TOKEN": value}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["TOKEN"] == CANARY


def test_encrypt_denied_names_the_identity_that_encrypts(
    moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    creds = restricted_credentials(boto_client, moto, "no-generate", ["kms:Decrypt"])
    proc = encrypt(json_env(moto.url) | creds, key, CANARY.encode())
    assert proc.returncode == 77, proc.stderr
    event = error_event(proc.stderr.decode())
    assert "kms:GenerateDataKey" in event["message"]
    assert "workstation" in event["hint"] and "CI" in event["hint"]
    assert "to the task role" not in event["hint"]


def test_encrypt_with_an_unknown_key_names_the_region_searched(moto: MotoServer) -> None:
    env = json_env(moto.url) | {"AWS_DEFAULT_REGION": "eu-west-1"}
    proc = encrypt(env, "alias/nope", CANARY.encode())
    assert proc.returncode == 66, proc.stderr
    event = error_event(proc.stderr.decode())
    assert "alias/nope" in event["message"]
    assert "eu-west-1 was searched" in event["hint"]
    assert "alias" in event["hint"] and "ARN" in event["hint"]


# -- not found: the region searched; Secrets Manager 77: the ARN an IAM policy grants ------------


def test_a_name_prefix_not_found_names_the_region(tmp_path: Path, moto: MotoServer) -> None:
    env = json_env(moto.url) | {"PARAMETER_STORE_PREFIX": "kptboard-rails"}
    event = refused(run_agent(tmp_path, env), 66)
    assert "us-east-1 was searched" in event["hint"]
    assert "trailing" not in event["hint"]


def test_a_name_prefix_with_a_trailing_dot_loads(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("ssm").put_parameter(
        Name="kptboard-rails.secret.key.base", Value=CANARY, Type="SecureString"
    )
    run = run_agent(tmp_path, json_env(moto.url) | {"PARAMETER_STORE_PREFIX": "kptboard-rails."})
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["SECRET_KEY_BASE"] == CANARY


@pytest.mark.parametrize(
    "reference", ["ssm:/app/missing", "secretsmanager:app/missing", "secretsmanager:app/x:k"]
)
def test_a_missing_reference_names_the_region_searched(
    tmp_path: Path, moto: MotoServer, reference: str
) -> None:
    env = json_env(moto.url) | {"AWS_DEFAULT_REGION": "eu-west-1", "DB_URL": reference}
    event = refused(run_agent(tmp_path, env), 66)
    assert event["kind"] == "not_found"
    assert "eu-west-1 was searched" in event["hint"], event


def test_a_secrets_manager_denial_names_the_secret_arn_pattern(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("secretsmanager").create_secret(
        Name="app/db", SecretString=json.dumps({"password": CANARY})
    )
    creds = restricted_credentials(boto_client, moto, "no-sm", ["ssm:GetParameters"])
    env = json_env(moto.url) | creds | {"DB_PASSWORD": "secretsmanager:app/db:password"}
    event = refused(run_agent(tmp_path, env), 77)
    assert event["kind"] == "access_denied"
    assert "arn:aws:secretsmanager:us-east-1:ACCOUNT:secret:app/db-??????" in event["hint"]
    assert "password" not in event["hint"]


# -- the last line: a JSON event in JSON log mode, one text line in text mode --------------------


def test_json_mode_ends_with_one_json_error_event(tmp_path: Path, moto: MotoServer) -> None:
    env = json_env(moto.url) | {"SECRETS_AGENT_LOG_LEVEL": "debug", "X": "ssm:/app/missing"}
    run = run_agent(tmp_path, env)
    event = refused(run, 66)
    assert event["logger"] == "secrets-agent"
    assert event["exit_code"] == 66 and event["kind"] == "not_found"
    assert "/app/missing" in event["message"] and event["hint"]
    lines = run.stderr.strip().splitlines()
    assert all(json.loads(line)["level"] != "error" for line in lines[:-1])
    assert error_line(run.stderr).startswith("secrets-agent: not found: ")


@pytest.mark.parametrize(
    ("setting", "kind"),
    [
        ({"SECRETS_AGENT_TIMEOUT": "soon"}, "config"),
        ({"PARAMETER_STORE_PREFIX": " "}, "config"),
        ({"PATH_X": "x", "PATH": "ssm:/p"}, "invalid"),
    ],
)
def test_json_mode_reports_every_kind_as_an_event(
    tmp_path: Path, moto: MotoServer, setting: dict[str, str], kind: str
) -> None:
    env = json_env(moto.url) | setting
    if "PATH" in setting:
        env["PATH"] = setting["PATH"]
    run = run_agent(tmp_path, env, command=["/bin/true"])
    assert run.returncode in (65, 78), run.stderr
    assert error_event(run.stderr)["kind"] == kind


def test_text_mode_keeps_one_text_line(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"SECRETS_AGENT_LOG_FORMAT": "text", "X": "ssm:/app/missing"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 66
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("secrets-agent: not found: ") and "/app/missing" in lines[-1]


# -- 69: the endpoint host and what went wrong there -------------------------------------------


def unreachable(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, Any]:
    env = json_env(endpoint) | {"X": "ssm:/app/x", "SECRETS_AGENT_TIMEOUT": "3"} | extra
    return refused(run_agent(tmp_path, env, timeout=60), 69)


def assert_network_hint(event: dict[str, Any]) -> None:
    assert "NAT gateway" in event["hint"] and "VPC endpoints" in event["hint"]
    for service in ("ssm", "secretsmanager", "kms", "ecs"):
        assert service in event["hint"]


def test_69_connection_refused_names_the_host(tmp_path: Path) -> None:
    port = free_port()
    event = unreachable(tmp_path, f"http://127.0.0.1:{port}")
    assert event["kind"] == "unavailable"
    assert event["endpoint"] == f"127.0.0.1:{port}" and event["error"] == "refused"
    assert f"refused from 127.0.0.1:{port}" in event["message"]
    assert_network_hint(event)


def test_69_dns_failure_names_the_host(tmp_path: Path) -> None:
    # Room for every attempt to fail on its own (a loaded machine is slow to start Python), so
    # that the last failure is the DNS one, not the overall deadline.
    event = unreachable(tmp_path, "http://nonexistent.invalid", SECRETS_AGENT_TIMEOUT="15")
    assert event["endpoint"] == "nonexistent.invalid" and event["error"] == "DNS"
    assert_network_hint(event)


def test_69_tls_failure_names_the_host(tmp_path: Path, moto: MotoServer) -> None:
    port = moto.url.rsplit(":", 1)[1]
    # moto speaks plain HTTP; room for every attempt to fail on its own, as above.
    event = unreachable(tmp_path, f"https://127.0.0.1:{port}", SECRETS_AGENT_TIMEOUT="15")
    assert event["endpoint"] == f"127.0.0.1:{port}" and event["error"] == "TLS"
    assert_network_hint(event)


def test_69_timeout_names_the_host(tmp_path: Path, moto: MotoServer) -> None:
    plan = FaultPlan(rate=1.0, kinds=("slow",), slow_seconds=30)
    with FaultProxy(moto.url, plan) as proxy:
        event = unreachable(tmp_path, proxy.url, SECRETS_AGENT_TIMEOUT="2")
        host = proxy.url.removeprefix("http://").rstrip("/")
    assert event["endpoint"] == host and event["error"] == "timed out"
    assert_network_hint(event)


def test_69_throttling_names_the_host(tmp_path: Path, moto: MotoServer) -> None:
    with FaultProxy(moto.url, FaultPlan(rate=1.0, kinds=("throttle",))) as proxy:
        event = unreachable(tmp_path, proxy.url, AWS_MAX_ATTEMPTS="2")
        host = proxy.url.removeprefix("http://").rstrip("/")
    assert event["endpoint"] == host and event["error"] == "throttled"
    assert "throttled" in event["message"] and "SECRETS_AGENT_TIMEOUT" in event["hint"]


def test_69_names_the_host_only(tmp_path: Path) -> None:
    port = free_port()
    event = unreachable(tmp_path, f"http://user:pa55word@127.0.0.1:{port}/?token=q1w2e3")
    text = json.dumps(event)
    assert f"127.0.0.1:{port}" in text
    for part in ("user", "pa55word", "token", "q1w2e3"):
        assert part not in text
