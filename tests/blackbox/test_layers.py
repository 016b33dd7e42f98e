"""Layered prefixes (``PARAMETER_STORE_PREFIX=/kptboard/common,/kptboard/prod``), black-box
against moto: override order, 66 naming the empty layer, 65 within one layer and across
sources, 78 for a blank entry, ``check``'s layer column, ``iam-policy`` and change checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_agent.core.errors import DataError
from secrets_agent.core.layers import records_from_layers
from secrets_agent.core.model import Item, Secret
from secrets_agent.core.naming import records_from_items
from secrets_agent.policy import needs as iam
from tests.conftest import REGION, base_env, error_line, run_agent
from tests.support.iam_support import ACCOUNT, Check, allows, as_list, aws_calls, checks_for
from tests.support.logs import events
from tests.support.moto_server import MotoServer
from tests.support.supervised import Fleet, Supervised, wait_until

CANARY = "layer-canary-7f3a"


def seed_ssm(boto_client: Callable[..., Any]) -> Any:
    ssm = boto_client("ssm")
    for name, value in [
        ("/kptboard/common/database_url", CANARY + "-common-db"),
        ("/kptboard/common/smtp_host", "smtp.common"),
        ("/kptboard/prod/database_url", CANARY + "-prod-db"),
        ("/kptboard/prod/secret_key_base", CANARY + "-skb"),
        ("/kptboard/production/leak", "must-not-load"),
        ("/kptboard/other/leak", "must-not-load"),
    ]:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    return ssm


def layered_env(moto: MotoServer, **extra: str) -> dict[str, str]:
    return base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/kptboard/common,/kptboard/prod",
        "SECRETS_AGENT_LOG_FORMAT": "json",
        **extra,
    }


def test_a_later_prefix_overrides_an_earlier_one_and_the_override_is_logged(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed_ssm(boto_client)
    run = run_agent(tmp_path, layered_env(moto))
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["DATABASE_URL"] == CANARY + "-prod-db"  # the later layer wins
    assert run.child_env["SMTP_HOST"] == "smtp.common"  # only in the earlier layer
    assert run.child_env["SECRET_KEY_BASE"] == CANARY + "-skb"
    assert "LEAK" not in run.child_env
    logged = events(run.stderr, "variables overridden by a later prefix")
    assert len(logged) == 1 and logged[0]["level"] == "info"
    assert logged[0]["names"] == ["DATABASE_URL"]
    described = logged[0]["overrides"]["DATABASE_URL"]
    assert "/kptboard/prod/database_url" in described and "/kptboard/common" in described
    assert CANARY not in run.stderr

    # The other order: common wins.
    swapped = layered_env(moto, PARAMETER_STORE_PREFIX="/kptboard/prod,/kptboard/common")
    run = run_agent(tmp_path, swapped)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["DATABASE_URL"] == CANARY + "-common-db"


def test_secrets_manager_layers_override_in_order(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    common = json.dumps({"host": "h1", "port": "1"})
    sm.create_secret(Name="kptboard/common/db", SecretString=common)
    sm.create_secret(Name="kptboard/prod/db", SecretString=json.dumps({"host": "h2"}))
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard/common, kptboard/prod"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert (run.child_env["DB_HOST"], run.child_env["DB_PORT"]) == ("h2", "1")


def test_an_empty_layer_is_66_naming_that_prefix(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed_ssm(boto_client)
    env = layered_env(moto, PARAMETER_STORE_PREFIX="/kptboard/common,/kptboard/staging")
    run = run_agent(tmp_path, env)
    assert run.returncode == 66 and not run.ran
    line = error_line(run.stderr)
    assert line.startswith("secrets-agent: not found: ")
    assert "'/kptboard/staging'" in line and "/kptboard/common" not in line

    sm_env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "kptboard/nothing,kptboard/none"}
    boto_client("secretsmanager").create_secret(Name="kptboard/nothing/x", SecretString="v")
    run = run_agent(tmp_path, sm_env)
    assert run.returncode == 66 and not run.ran
    assert "'kptboard/none'" in error_line(run.stderr)


def test_a_collision_within_one_layer_stays_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = seed_ssm(boto_client)
    ssm.put_parameter(Name="/kptboard/prod/database/url", Value="x", Type="String")
    run = run_agent(tmp_path, layered_env(moto))
    assert run.returncode == 65 and not run.ran
    line = error_line(run.stderr)
    assert "'/kptboard/prod/database/url'" in line and "'/kptboard/prod/database_url'" in line
    assert "DATABASE_URL" in line and CANARY not in run.stderr


def test_ssm_and_secrets_manager_giving_one_name_stays_65_whatever_the_layers(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed_ssm(boto_client)
    boto_client("secretsmanager").create_secret(Name="kptboard/prod/smtp_host", SecretString="s")
    env = layered_env(moto, SECRETS_MANAGER_PREFIX="kptboard/prod")
    run = run_agent(tmp_path, env)
    assert run.returncode == 65 and not run.ran
    line = error_line(run.stderr)
    assert "ssm '/kptboard/common/smtp_host'" in line
    assert "secretsmanager 'kptboard/prod/smtp_host'" in line and "SMTP_HOST" in line


def test_each_layer_keeps_the_protected_name_and_allowlist_rules(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = seed_ssm(boto_client)
    ssm.put_parameter(Name="/kptboard/prod/ld_preload", Value="/tmp/x.so", Type="String")
    run = run_agent(tmp_path, layered_env(moto))
    assert run.returncode == 65 and "LD_PRELOAD" in error_line(run.stderr)
    ssm.delete_parameter(Name="/kptboard/prod/ld_preload")
    allow = layered_env(moto, SECRETS_AGENT_ALLOW="DATABASE_URL,SECRET_KEY_BASE")
    run = run_agent(tmp_path, allow)
    assert run.returncode == 65 and not run.ran
    assert "SMTP_HOST (ssm '/kptboard/common/smtp_host')" in error_line(run.stderr)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARAMETER_STORE_PREFIX", "/kptboard/common,"),
        ("PARAMETER_STORE_PREFIX", "/kptboard/common, ,/kptboard/prod"),
        ("PARAMETER_STORE_PREFIX", "/kptboard/common,/kptboard/prod,/kptboard/prod/"),
        ("PARAMETER_STORE_PREFIX", "/kptboard/common,/kptboard/*"),
        ("PARAMETER_STORE_PREFIX", "/a,/" + "x/" * 20),
        ("SECRETS_MANAGER_PREFIX", "kptboard/common,\u00a0"),
        ("SECRETS_MANAGER_PREFIX", "kptboard/common," + "x" * 600),
    ],
)
def test_a_blank_repeated_or_invalid_entry_is_78_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    run = run_agent(tmp_path, base_env("http://127.0.0.1:9") | {variable: value})
    assert run.returncode == 78, run.stderr
    assert not run.ran
    assert f"{variable} is invalid" in error_line(run.stderr)


def test_check_shows_the_layer_each_variable_came_from(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed_ssm(boto_client)
    env = layered_env(moto, SMTP_HOST="from-task-definition", TOKEN="ssm:/kptboard/other/leak")
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()}
    assert rows["DATABASE_URL"] == [
        "DATABASE_URL", "ssm", "/kptboard/prod/database_url", "1", "/kptboard/prod"
    ]
    assert rows["SECRET_KEY_BASE"][4] == "/kptboard/prod"
    assert rows["SMTP_HOST"] == ["SMTP_HOST", "environment", "SMTP_HOST", "-", "-"]
    assert rows["TOKEN"][1:] == ["ssm", "/kptboard/other/leak", "1", "-"]
    assert CANARY not in run.stdout + run.stderr
    # One prefix: the four columns of before.
    single = run_agent(tmp_path, layered_env(moto, PARAMETER_STORE_PREFIX="/kptboard/prod"),
                       ["check"])
    assert single.returncode == 0, single.stderr
    assert all(len(line.split()) == 4 for line in single.stdout.splitlines())


def test_iam_policy_grants_each_prefix_and_nothing_between_them() -> None:
    env = {
        "AWS_REGION": REGION,
        "PARAMETER_STORE_PREFIX": "/kptboard/common,/kptboard/prod,kptboard-rails",
        "SECRETS_MANAGER_PREFIX": "kptboard/common,kptboard/prod",
    }
    doc = json.loads(iam.render_for_environment(env, fmt="json", account_id=ACCOUNT))
    sids = {s["Sid"]: s for s in doc["Statement"]}
    assert len(sids) == len(doc["Statement"])  # one statement per kind, Sids unique
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/"
    assert sorted(as_list(sids["ReadParametersUnderPath"]["Resource"])) == [
        arn + "kptboard/common", arn + "kptboard/common/*",
        arn + "kptboard/prod", arn + "kptboard/prod/*",
    ]
    assert sorted(as_list(sids["ReadParametersByNamePrefix"]["Resource"])) == [
        arn + "kptboard-rails.*", arn + "kptboard-rails/*"
    ]
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
    assert sorted(as_list(sids["ReadSecretsUnderPrefix"]["Resource"])) == [
        secret + "kptboard/common/*", secret + "kptboard/prod/*"
    ]
    text = json.dumps(doc)
    assert "kptboard/*" not in text and "parameter/*" not in text


def test_every_call_of_a_layered_run_is_allowed_by_its_policy_and_a_sibling_is_not(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed_ssm(boto_client)
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="kptboard/common/api", SecretString=json.dumps({"key": "k"}))
    sm.create_secret(Name="kptboard/prod/mail", SecretString="m")
    env = layered_env(moto, SECRETS_MANAGER_PREFIX="kptboard/common,kptboard/prod",
                      SECRETS_AGENT_LOG_LEVEL="debug")
    run = run_agent(tmp_path, env)
    assert run.returncode == 0 and run.ran, run.stderr
    policy = json.loads(iam.render_for_environment(env, fmt="json", account_id=ACCOUNT))
    listed = sm.list_secrets()["SecretList"]

    def lookup(value: str) -> list[str]:
        if value.endswith("*"):
            return [s["ARN"] for s in listed if s["Name"].startswith(value[:-1])]
        return [s["ARN"] for s in listed if value in (s["Name"], s["ARN"])]

    checks = [c for call in aws_calls(run.stderr) for c in checks_for(call, lookup)]
    paths = {c.resource for c in checks if c.action == "ssm:GetParametersByPath"}
    assert paths == {
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/kptboard/common",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/kptboard/prod",
    }
    denied = [c for c in checks if not allows(policy, c)]
    assert checks and denied == []
    # Nothing between the layers: a sibling path and a sibling secret are not granted.
    sibling = [
        Check("ssm:GetParametersByPath",
                        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/kptboard/production"),
        Check("ssm:GetParametersByPath",
                        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/kptboard"),
        Check("secretsmanager:GetSecretValue",
                        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kptboard/other-AbCdEf"),
    ]
    assert not any(allows(policy, c) for c in sibling)


@pytest.fixture
def supervised(moto: MotoServer, tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    fleet = Fleet(tmp_path)
    extra = {
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
        "SECRETS_AGENT_STOP_TIMEOUT": "3",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
    }
    yield lambda env, *report: fleet.start(env | extra, *report)
    fleet.close()


def test_change_checks_cover_every_layer(
    supervised: Callable[..., Supervised], moto: MotoServer, boto_client: Any
) -> None:
    ssm = seed_ssm(boto_client)
    sup = supervised(layered_env(moto), "SMTP_HOST", "DATABASE_URL")
    assert "env SMTP_HOST=smtp.common" in sup.lines()
    # A change in the first layer, of a variable the second does not override, restarts.
    ssm.put_parameter(Name="/kptboard/common/smtp_host", Value="smtp.new", Type="String",
                      Overwrite=True)
    assert sup.wait_line("env SMTP_HOST", count=2, timeout=20) == "env SMTP_HOST=smtp.new"
    assert sup.lines().count(f"env DATABASE_URL={CANARY}-prod-db") == 2
    # A change in the second layer restarts too.
    ssm.put_parameter(Name="/kptboard/prod/database_url", Value="db-new", Type="SecureString",
                      Overwrite=True)
    assert sup.wait_line("env DATABASE_URL", count=3, timeout=20) == "env DATABASE_URL=db-new"
    wait_until(lambda: len(events(sup.stderr(), "command restarted")) == 2, timeout=5,
               what="two restarts")
    assert CANARY not in sup.stderr()
    assert sup.terminate() == 3


# ----------------------------------------------------------------------------- the pure rule

KEYS = st.sampled_from(["db_url", "db.url", "DB/URL", "token", "ld_preload", "9x", "a-b", "A_B"])


def _items(source: str, layer: str, keys: list[str]) -> list[Item]:
    return [
        Item(source=source, source_name=f"{layer}/{k}", value=Secret("v"), version="1",  # type: ignore[arg-type]
             key=k, layer=layer)
        for k in keys
    ]


def _outcome(fn: Any) -> Any:
    try:
        return sorted((r.name, r.source, r.source_name) for r in fn())
    except DataError as exc:
        return ("error", exc.exit_code, exc.message)


@given(st.lists(KEYS, max_size=5), st.lists(KEYS, max_size=5), st.booleans())
def test_one_layer_per_source_behaves_as_a_single_prefix(
    ssm_keys: list[str], sm_keys: list[str], allow: bool
) -> None:
    items = _items("ssm", "/app", ssm_keys) + _items("secretsmanager", "app", sm_keys)
    allowed = ("DB_URL", "TOKEN") if allow else None
    order = {"ssm": ("/app",), "secretsmanager": ("app",)}
    layered = _outcome(lambda: records_from_layers(items, order=order, allow=allowed).records)
    single = _outcome(lambda: records_from_items(items, allow=allowed))
    assert layered == single


def test_later_layers_override_in_setting_order_and_report_names_only() -> None:
    items = _items("ssm", "/b", ["db_url"]) + _items("ssm", "/a", ["db_url", "token"])
    result = records_from_layers(items, order={"ssm": ("/a", "/b")})
    assert {r.name: r.source_name for r in result.records} == {
        "DB_URL": "/b/db_url", "TOKEN": "/a/token"
    }
    (override,) = result.overrides
    assert (override.name, override.earlier_layer, override.later_layer) == ("DB_URL", "/a", "/b")
    assert "'/b/db_url'" in override.describe() and "v" not in override.describe().split()
