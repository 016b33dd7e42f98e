"""Black-box: Secrets Manager prefix loads and references, through the real entrypoint and a
real moto server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    base_env,
    error_lines,
    refused,
    restricted_credentials,
    run_agent,
    started,
)
from tests.support.logs import events
from tests.support.moto_server import MotoServer
from tests.support.rotation import rotate_by_stage_move
from tests.support.seed import json_secret

CANARY = "sm-canary-7Qx"


def sm_calls(stderr: str) -> list[str]:
    return [e["operation"] for e in events(stderr, "aws call") if e["service"] == "secretsmanager"]


def one_error_line(stderr: str) -> str:
    """The one non-JSON line the agent prints when it fails."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    return lines[0]


def test_prefix_loads_json_and_plain_secrets(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    database = {"username": "app", "password": "p'w\n$x", "port": 5432}
    json_secret(sm, "kptboard/prod/database", database)
    sm.create_secret(Name="kptboard/prod/secret_key_base", SecretString=" skb= \n")
    sm.create_secret(Name="kptboard/prod/feature.flags", SecretString='["a", "b"]')
    sm.create_secret(Name="kptboard/production/leak", SecretString="no")
    sm.create_secret(Name="kptboard/prodx", SecretString="no")
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard/prod"}
    run = run_agent(tmp_path, env)
    child = started(run)
    added = {k: v for k, v in child.items() if k not in env}
    assert added == {
        "DATABASE_USERNAME": "app",
        "DATABASE_PASSWORD": "p'w\n$x",
        "DATABASE_PORT": "5432",
        "SECRET_KEY_BASE": " skb= \n",
        "FEATURE_FLAGS": '["a", "b"]',
    }
    assert child["SECRETS_MANAGER_PREFIX"] == "kptboard/prod"


def test_prefix_pages_with_few_calls_and_reads_awscurrent_after_rotation(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    for n in range(25):
        sm.create_secret(Name=f"app/s{n:02d}", SecretString=f"v{n}")
    rotate_by_stage_move(sm, "app/s07", "rotated")
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app", "SECRETS_AGENT_LOG_LEVEL": "debug"}
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["S07"] == "rotated"
    assert all(child[f"S{n:02d}"] == f"v{n}" for n in range(25) if n != 7)
    # Two pages of at most 20, plus one AWSCURRENT re-read for the secret moto returns stale.
    assert sorted(sm_calls(run.stderr)) == [
        "BatchGetSecretValue",
        "BatchGetSecretValue",
        "GetSecretValue",
    ]


def test_nothing_under_the_prefix_is_66_naming_it(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("secretsmanager").create_secret(Name="kptboard/production/x", SecretString="v")
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard/prod"}
    run = run_agent(tmp_path, env)
    refused(run, 66, "kptboard/prod")


def test_deleted_and_binary_secrets_under_the_prefix(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/old_token", SecretString="gone")
    sm.delete_secret(SecretId="app/old_token")
    sm.create_secret(Name="app/cert", SecretBinary="-----BEGIN X-----\né\n".encode())
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app"}
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["CERT"] == "-----BEGIN X-----\né\n"
    assert "OLD_TOKEN" not in child

    sm.create_secret(Name="app/blob", SecretBinary=b"\xff\xfe" + CANARY.encode())
    run = run_agent(tmp_path, env)
    assert run.returncode == 65, run.stderr
    assert not run.ran
    assert "app/blob" in one_error_line(run.stderr)
    assert CANARY not in run.stderr


def test_prefix_that_cannot_start_a_secret_name_is_78(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard prod"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 78, run.stderr
    assert not run.ran
    assert "SECRETS_MANAGER_PREFIX" in one_error_line(run.stderr)


@pytest.mark.parametrize(
    ("body", "exit_code"),
    [
        ({"username": "u", "password": {"inner": CANARY}}, 65),
        ({"hosts": [CANARY]}, 65),
        ({"password": None, "x": CANARY}, 65),
    ],
)
def test_nested_json_under_the_prefix_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, body: object, exit_code: int
) -> None:
    boto_client("secretsmanager").create_secret(
        Name="kptboard/prod/database", SecretString=json.dumps(body)
    )
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard/prod"}
    run = run_agent(tmp_path, env)
    assert run.returncode == exit_code, run.stderr
    assert not run.ran
    assert "kptboard/prod/database" in one_error_line(run.stderr)
    assert CANARY not in run.stderr + run.stdout


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("app/ld", json.dumps({"preload": CANARY}), "LD_PRELOAD"),
        ("app/aws", json.dumps({"secret_access_key": CANARY}), "AWS_SECRET_ACCESS_KEY"),
        ("app/path", CANARY, "PATH"),
        ("app/1password", CANARY, "digit"),
        ("app/db", json.dumps({"url": CANARY, "URL": CANARY}), "DB_URL"),
    ],
    ids=["json-key-ld", "json-key-aws", "plain-path", "digit", "json-keys-collide"],
)
def test_protected_invalid_or_colliding_names_from_secrets_are_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, name: str, value: str, needle: str
) -> None:
    boto_client("secretsmanager").create_secret(Name=name, SecretString=value)
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 65, run.stderr
    assert not run.ran
    line = one_error_line(run.stderr)
    assert needle in line and name in line
    assert CANARY not in run.stderr + run.stdout


def test_every_reference_form(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    sm = boto_client("secretsmanager")
    first = sm.create_secret(
        Name="kptboard/prod/db", SecretString=json.dumps({"user": "u1", "pw": "p1", "n": 1})
    )
    second = sm.put_secret_value(
        SecretId="kptboard/prod/db", SecretString=json.dumps({"user": "u2", "pw": "p2", "n": 2.5})
    )
    arn = first["ARN"]
    west_arn = boto_client("secretsmanager", "eu-west-1").create_secret(
        Name="shared/api", SecretString="from-eu"
    )["ARN"]
    cn_arn = boto_client("secretsmanager", "cn-north-1").create_secret(
        Name="china/api", SecretString=json.dumps({"token": "from-cn"})
    )["ARN"]
    assert arn[-7] == "-"  # the full ARN, with its random suffix
    env = base_env(moto.url) | {
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "WHOLE": "secretsmanager:kptboard/prod/db",
        "USER": "secretsmanager:kptboard/prod/db:user",
        "PREVIOUS_USER": "secretsmanager:kptboard/prod/db:user:AWSPREVIOUS:",
        "PREVIOUS_WHOLE": "secretsmanager:kptboard/prod/db::AWSPREVIOUS:",
        "PINNED_PW": f"secretsmanager:kptboard/prod/db:pw::{first['VersionId']}",
        "CURRENT_N": f"secretsmanager:kptboard/prod/db:n:AWSCURRENT:{second['VersionId']}",
        "ARN_PW": f"{arn}:pw",
        "ARN_PREVIOUS_PW": f"{arn}:pw:AWSPREVIOUS:",
        "ARN_WHOLE": arn,
        "WEST": west_arn,
        "CHINA": f"{cn_arn}:token",
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    got = run.child_env
    assert got is not None
    current = json.dumps({"user": "u2", "pw": "p2", "n": 2.5})
    expected = {
        "WHOLE": current,
        "USER": "u2",
        "PREVIOUS_USER": "u1",
        "PREVIOUS_WHOLE": json.dumps({"user": "u1", "pw": "p1", "n": 1}),
        "PINNED_PW": "p1",
        "CURRENT_N": "2.5",
        "ARN_PW": "p2",
        "ARN_PREVIOUS_PW": "p1",
        "ARN_WHOLE": current,
        "WEST": "from-eu",
        "CHINA": "from-cn",
    }
    assert {k: got[k] for k in expected} == expected
    # Eleven references name eight distinct (region, secret, stage, version) reads.
    assert sm_calls(run.stderr) == ["GetSecretValue"] * 8


def test_check_lists_source_and_version(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    sm = boto_client("secretsmanager")
    created = sm.create_secret(Name="app/db", SecretString=json.dumps({"password": CANARY}))
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app", "TOKEN": "secretsmanager:app/db"}
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    assert "DB_PASSWORD" in run.stdout and "TOKEN" in run.stdout
    assert "secretsmanager" in run.stdout
    assert "app/db:password" in run.stdout
    assert created["VersionId"] in run.stdout
    assert CANARY not in run.stdout + run.stderr


def test_missing_reference_is_66_and_the_command_never_runs(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    env = base_env(moto.url) | {"DB_URL": "secretsmanager:kptboard/prod/nope"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 66, run.stderr
    assert not run.ran
    line = one_error_line(run.stderr)
    assert "kptboard/prod/nope" in line and "DB_URL" in line


@pytest.mark.parametrize(
    ("bad", "exit_code"),
    [
        ("secretsmanager:kptboard/prod/missing", 66),
        ("secretsmanager:kptboard/prod/db:no_such_key", 66),
        ("secretsmanager:kptboard/prod/db:nested", 65),
    ],
)
def test_one_good_one_bad_reference_runs_nothing(
    tmp_path: Path, moto: MotoServer, boto_client: Any, bad: str, exit_code: int
) -> None:
    boto_client("secretsmanager").create_secret(
        Name="kptboard/prod/db",
        SecretString=json.dumps({"user": CANARY, "nested": {"a": CANARY}}),
    )
    env = base_env(moto.url) | {"GOOD": "secretsmanager:kptboard/prod/db:user", "BAD": bad}
    run = run_agent(tmp_path, env)
    assert run.returncode == exit_code, run.stderr
    assert not run.ran
    assert "BAD" in one_error_line(run.stderr)
    assert CANARY not in run.stderr + run.stdout


def test_ssm_and_secrets_manager_prefixes_giving_one_name_is_65_naming_both(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("ssm").put_parameter(Name="/app/db/url", Value=CANARY, Type="SecureString")
    boto_client("secretsmanager").create_secret(
        Name="app/db", SecretString=json.dumps({"url": CANARY})
    )
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app", "SECRETS_MANAGER_PREFIX": "app"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 65, run.stderr
    assert not run.ran
    line = one_error_line(run.stderr)
    assert "/app/db/url" in line and "app/db:url" in line and "DB_URL" in line
    assert CANARY not in run.stderr + run.stdout


def test_precedence_references_and_inherited_values(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/db", SecretString=json.dumps({"user": "from-prefix", "pw": "pp"}))
    sm.create_secret(Name="app/rails_env", SecretString="from-prefix")
    sm.create_secret(Name="other/db", SecretString=json.dumps({"user": "from-reference"}))
    env = base_env(moto.url) | {
        "SECRETS_MANAGER_PREFIX": "app",
        "DB_USER": "secretsmanager:other/db:user",
        "RAILS_ENV": "production",
    }
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["DB_USER"] == "from-reference"  # a reference beats the prefix
    assert child["RAILS_ENV"] == "production"  # inherited beats the prefix by default
    assert child["DB_PW"] == "pp"

    run = run_agent(tmp_path, env | {"SECRETS_AGENT_OVERRIDE": "true"})
    child = started(run)
    assert child["DB_USER"] == "from-reference"  # still the reference
    assert child["RAILS_ENV"] == "from-prefix"


def test_missing_batch_permission_is_77_naming_the_action(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("secretsmanager").create_secret(Name="app/db", SecretString=CANARY)
    creds = restricted_credentials(boto_client, moto, "get-only", ["secretsmanager:GetSecretValue"])
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app"} | creds
    run = run_agent(tmp_path, env)
    assert run.returncode == 77, run.stderr
    assert not run.ran
    assert "secretsmanager:BatchGetSecretValue" in one_error_line(run.stderr)
    # The same credentials may read a referenced secret: GetSecretValue is all a reference needs.
    run = run_agent(tmp_path, base_env(moto.url) | creds | {"TOKEN": "secretsmanager:app/db"})
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["TOKEN"] == CANARY


def test_values_never_reach_any_output_at_debug(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/db", SecretString=json.dumps({"password": CANARY}))
    sm.create_secret(Name="app/plain", SecretString=CANARY + "-plain")
    env = base_env(moto.url) | {
        "SECRETS_MANAGER_PREFIX": "app",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "REF": "secretsmanager:app/db:password",
    }
    for args in (None, ["check"], ["env"], ["env", "--format", "json"]):
        run = run_agent(tmp_path, env, args)
        assert run.returncode == 0, run.stderr
        assert CANARY not in run.stdout + run.stderr, args


def test_supervise_mode_restarts_on_a_stage_move_rotation(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    from tests.support.supervised import Fleet

    sm = boto_client("secretsmanager")
    sm.create_secret(Name="app/db", SecretString=json.dumps({"password": "pw-one"}))
    sm.create_secret(Name="shared/token", SecretString="tok-one")
    env = base_env(moto.url) | {
        "SECRETS_MANAGER_PREFIX": "app",
        "TOKEN": "secretsmanager:shared/token",
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
        "SECRETS_AGENT_STOP_TIMEOUT": "3",
    }
    with Fleet(tmp_path) as fleet:
        sup = fleet.start(env, "DB_PASSWORD", "TOKEN")
        assert "env DB_PASSWORD=pw-one" in sup.lines() and "env TOKEN=tok-one" in sup.lines()
        rotate_by_stage_move(sm, "app/db", json.dumps({"password": "pw-two"}))
        assert sup.wait_line("env DB_PASSWORD", count=2, timeout=30) == "env DB_PASSWORD=pw-two"
        rotate_by_stage_move(sm, "shared/token", "tok-two")
        assert sup.wait_line("env TOKEN", count=3, timeout=30) == "env TOKEN=tok-two"
        assert sup.proc.poll() is None
        for value in ("pw-one", "pw-two", "tok-one", "tok-two"):
            assert value not in sup.stderr()
