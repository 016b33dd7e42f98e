"""Black-box tests of ``aesdk:`` values: ``secrets-agent encrypt`` then the real entrypoint,
against a real moto server's KMS, SSM and Secrets Manager."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ENTRYPOINT,
    REPORT_ENV,
    ROOT,
    AgentRun,
    base_env,
    error_line,
    restricted_credentials,
    run_agent,
    started,
)
from tests.support.moto_server import MotoServer, free_port

CANARY = "cAnArY-51e0b7-never-in-output"


def agent_env(moto: MotoServer, *keys: str) -> dict[str, str]:
    env = base_env(moto.url) | {
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    if keys:
        env["SECRETS_AGENT_KMS_KEY_ARNS"] = ",".join(keys)
    return env


def make_key(boto_client: Any) -> str:
    return str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])


def encrypt(tmp_path: Path, moto: MotoServer, key: str, name: str, plaintext: str = CANARY) -> str:
    run = run_agent(
        tmp_path, agent_env(moto), ["encrypt", "--key-id", key, "--name", name], stdin=plaintext
    )
    assert run.returncode == 0, run.stderr
    assert_silent(run)
    value = run.stdout.strip()
    assert value.startswith("aesdk:") and run.stdout.count("\n") == 1
    return value


def assert_silent(run: AgentRun) -> None:
    """The plaintext appears in no output, and the SDK printed no traceback."""
    assert CANARY not in run.stdout
    assert CANARY not in run.stderr
    assert "Traceback" not in run.stderr


def assert_refused(run: AgentRun, code: int, *names: str) -> None:
    assert run.returncode == code, run.stderr
    assert not run.ran
    assert_silent(run)
    last = error_line(run.stderr)
    assert last.startswith("secrets-agent: ")
    for name in names:
        assert name in last


def flip_byte(value: str, offset: int) -> str:
    raw = bytearray(base64.b64decode(value[len("aesdk:") :]))
    raw[offset] ^= 0x01
    return "aesdk:" + base64.b64encode(bytes(raw)).decode()


def test_round_trip_in_the_environment(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    env = agent_env(moto, key) | {"SECRET_KEY_BASE": value}
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["SECRET_KEY_BASE"] == CANARY
    assert_silent(run)
    assert "SECRET_KEY_BASE" in run.stderr
    check = run_agent(tmp_path, env, ["check"])
    assert check.returncode == 0, check.stderr
    assert "SECRET_KEY_BASE" in check.stdout and "aesdk" in check.stdout
    assert_silent(check)


@pytest.mark.parametrize("kind", ["String", "SecureString"])
def test_round_trip_in_ssm_parameters(
    tmp_path: Path, moto: MotoServer, boto_client: Any, kind: str
) -> None:
    key = make_key(boto_client)
    ssm = boto_client("ssm")
    by_prefix = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    by_ref = encrypt(tmp_path, moto, key, "DB_PASSWORD", CANARY + "-db")
    ssm.put_parameter(Name="/app/prod/secret_key_base", Value=by_prefix, Type=kind)
    ssm.put_parameter(Name="/shared/db_password", Value=by_ref, Type=kind)
    env = agent_env(moto, key) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "DB_PASSWORD": "ssm:/shared/db_password",
    }
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["SECRET_KEY_BASE"] == CANARY
    assert child["DB_PASSWORD"] == CANARY + "-db"
    assert_silent(run)


def test_round_trip_in_secrets_manager_json_keys(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    sm = boto_client("secretsmanager")
    password = encrypt(tmp_path, moto, key, "DATABASE_PASSWORD")
    token = encrypt(tmp_path, moto, key, "API_TOKEN", CANARY + "-api")
    sm.create_secret(
        Name="app/prod/database",
        SecretString=json.dumps({"username": "rails", "password": password}),
    )
    sm.create_secret(Name="shared/api", SecretString=json.dumps({"token": token}))
    env = agent_env(moto, key) | {
        "SECRETS_MANAGER_PREFIX": "app/prod",
        "API_TOKEN": "secretsmanager:shared/api:token",
    }
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["DATABASE_USERNAME"] == "rails"
    assert child["DATABASE_PASSWORD"] == CANARY
    assert child["API_TOKEN"] == CANARY + "-api"
    assert_silent(run)


def test_value_moved_to_another_variable_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    run = run_agent(tmp_path, agent_env(moto, key) | {"DATABASE_PASSWORD": value})
    assert_refused(run, 65, "DATABASE_PASSWORD", "SECRET_KEY_BASE")


def test_value_moved_to_another_ssm_name_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    boto_client("ssm").put_parameter(Name="/app/prod/admin_password", Value=value, Type="String")
    env = agent_env(moto, key) | {"PARAMETER_STORE_PREFIX": "/app/prod"}
    assert_refused(run_agent(tmp_path, env), 65, "ADMIN_PASSWORD")


@pytest.mark.parametrize("where", ["header", "body", "signature"])
def test_flipped_byte_is_65(tmp_path: Path, moto: MotoServer, boto_client: Any, where: str) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    offset = {"header": 40, "body": -150, "signature": -1}[where]
    raw_len = len(base64.b64decode(value[len("aesdk:") :]))
    tampered = flip_byte(value, offset % raw_len)
    run = run_agent(tmp_path, agent_env(moto, key) | {"SECRET_KEY_BASE": tampered})
    assert_refused(run, 65, "SECRET_KEY_BASE")


def test_truncated_value_is_65(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    raw = base64.b64decode(value[len("aesdk:") :])
    cut = "aesdk:" + base64.b64encode(raw[: len(raw) // 2]).decode()
    run = run_agent(tmp_path, agent_env(moto, key) | {"SECRET_KEY_BASE": cut})
    assert_refused(run, 65, "SECRET_KEY_BASE")


def test_key_outside_the_allowed_list_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    allowed, other = make_key(boto_client), make_key(boto_client)
    value = encrypt(tmp_path, moto, other, "SECRET_KEY_BASE")
    run = run_agent(tmp_path, agent_env(moto, allowed) | {"SECRET_KEY_BASE": value})
    assert_refused(run, 65, "SECRET_KEY_BASE", other, "SECRETS_AGENT_KMS_KEY_ARNS")


def test_missing_key_list_is_78(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    run = run_agent(tmp_path, agent_env(moto) | {"SECRET_KEY_BASE": value})
    assert_refused(run, 78, "SECRET_KEY_BASE", "SECRETS_AGENT_KMS_KEY_ARNS")


def test_kms_access_denied_is_77(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    creds = restricted_credentials(boto_client, moto, "no-kms", ["kms:Encrypt"])
    env = agent_env(moto, key) | {"SECRET_KEY_BASE": value} | creds
    run = run_agent(tmp_path, env)
    assert_refused(run, 77, "SECRET_KEY_BASE", "kms:Decrypt")


def test_kms_unreachable_is_69(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    value = encrypt(tmp_path, moto, key, "SECRET_KEY_BASE")
    env = agent_env(moto, key) | {
        "SECRET_KEY_BASE": value,
        "AWS_ENDPOINT_URL_KMS": f"http://127.0.0.1:{free_port()}",
        "SECRETS_AGENT_TIMEOUT": "5",
    }
    run = run_agent(tmp_path, env, timeout=30)
    assert_refused(run, 69, "SECRET_KEY_BASE")


@pytest.mark.parametrize("name", ["PATH", "AWS_SECRET_ACCESS_KEY", "1ABC", "has-dash"])
def test_encrypt_refuses_a_name_the_agent_would_never_set(
    tmp_path: Path, moto: MotoServer, boto_client: Any, name: str
) -> None:
    key = make_key(boto_client)
    run = run_agent(
        tmp_path, agent_env(moto), ["encrypt", "--key-id", key, "--name", name], stdin=CANARY
    )
    assert run.returncode == 65, run.stderr
    assert run.stdout == ""
    assert_silent(run)


def test_encrypt_refuses_a_value_no_environment_can_hold(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    argv = [sys.executable, "-m", "secrets_agent", "encrypt", "--key-id", key, "--name", "TOKEN"]
    proc = subprocess.run(
        argv, env=agent_env(moto), input=b"a\x00b", capture_output=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 65
    assert proc.stdout == b""


def importtime(env: dict[str, str], tmp_path: Path) -> str:
    out = tmp_path / "env.json"
    argv = [sys.executable, "-X", "importtime", str(ENTRYPOINT), sys.executable, str(REPORT_ENV)]
    proc = subprocess.run(
        [*argv, str(out)], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_sdk_is_imported_only_for_an_aesdk_value(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    boto_client("ssm").put_parameter(Name="/app/prod/plain", Value="x", Type="SecureString")
    env = agent_env(moto, key) | {"PARAMETER_STORE_PREFIX": "/app/prod"}
    without = importtime(env, tmp_path)
    assert "botocore" in without
    assert "aws_encryption_sdk" not in without
    value = encrypt(tmp_path, moto, key, "TOKEN")
    with_value = importtime(env | {"TOKEN": value}, tmp_path)
    assert "aws_encryption_sdk" in with_value


def wrap(value: str, sep: str, width: int = 76) -> str:
    """``aesdk:`` + the base64 broken into lines of ``width`` as ``base64`` prints it."""
    body = value[len("aesdk:") :]
    return "aesdk:" + sep.join(body[i : i + width] for i in range(0, len(body), width)) + sep


@pytest.mark.parametrize("sep", ["\n", "\r\n", " ", "\t"])
def test_base64_wrapped_at_76_columns_decrypts(
    tmp_path: Path, moto: MotoServer, boto_client: Any, sep: str
) -> None:
    key = make_key(boto_client)
    wrapped = wrap(encrypt(tmp_path, moto, key, "SECRET_KEY_BASE"), sep)
    assert wrapped.count(sep) > 5
    boto_client("ssm").put_parameter(
        Name="/app/prod/secret_key_base", Value=wrapped, Type="SecureString"
    )
    by_ref = wrap(encrypt(tmp_path, moto, key, "DB_PASSWORD"), sep)
    env = agent_env(moto, key) | {"PARAMETER_STORE_PREFIX": "/app/prod", "DB_PASSWORD": by_ref}
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["SECRET_KEY_BASE"] == CANARY
    assert child["DB_PASSWORD"] == CANARY
    assert_silent(run)


@pytest.mark.parametrize("odd", ["\x0b", "\x0c", "\u2028", "\u00a0", "!", "-", "_"])
def test_wrapped_base64_with_any_other_character_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, odd: str
) -> None:
    key = make_key(boto_client)
    wrapped = wrap(encrypt(tmp_path, moto, key, "SECRET_KEY_BASE"), "\n")
    broken = wrapped.replace("\n", odd + "\n", 1)
    boto_client("ssm").put_parameter(
        Name="/app/prod/secret_key_base", Value=broken, Type="SecureString"
    )
    env = agent_env(moto, key)
    for extra in ({"PARAMETER_STORE_PREFIX": "/app/prod"}, {"SECRET_KEY_BASE": broken}):
        run = run_agent(tmp_path, env | extra)
        assert_refused(run, 65, "SECRET_KEY_BASE", "base64")
