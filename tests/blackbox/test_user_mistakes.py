"""A team's own mistakes fail closed, each named with its fix: a required variable that is not
there (66), a misspelt or unknown setting name (78), a setting that cannot take effect (78), a
prefix of ``/`` (78), ``check``/``env`` with nothing configured (78), ``check --format json``
with a real start's exit code, and an IAM policy too large for IAM (78).

Black-box: the real entrypoint (``docker/docker-entrypoint.py``) and ``python -m secrets_agent``
against a moto server; supervise mode through the tests' short-interval wrapper.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentRun, base_env, error_lines, restricted_credentials, run_agent
from tests.support.moto_server import MotoServer
from tests.support.supervised import Fleet, wait_until

ACCOUNT = "123456789012"


def error_line(run: AgentRun) -> str:
    """The one failure the run reports, as its text line (a JSON error event in JSON mode)."""
    lines = [line for line in error_lines(run.stderr) if line.startswith("secrets-agent: ")]
    assert len(lines) == 1, run.stderr
    return lines[0]


def refused(run: AgentRun, code: int, *words: str) -> str:
    assert run.returncode == code, (run.returncode, run.stderr)
    assert not run.ran
    line = error_line(run)
    for word in words:
        assert word in line, line
    return line


def seed(boto_client: Any, **parameters: str) -> None:
    ssm = boto_client("ssm")
    for name, value in (parameters or {"/myapp/prod/database_url": "postgres://db"}).items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")


def myapp(moto: MotoServer, **settings: str) -> dict[str, str]:
    """The agent on the moto server, ``PARAMETER_STORE_PREFIX=/myapp/prod``, and ``settings``."""
    return base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/myapp/prod"} | settings


# -- SECRETS_AGENT_REQUIRE: a required variable missing or empty is 66, in every mode ------


def test_a_required_variable_that_nothing_loads_is_66_naming_it_and_the_prefix(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)  # DATABASE_URL only
    env = myapp(moto, SECRETS_AGENT_REQUIRE="SECRET_KEY_BASE,DATABASE_URL")
    line = refused(run_agent(tmp_path, env), 66, "SECRET_KEY_BASE", "/myapp/prod")
    assert "DATABASE_URL" not in line.split("after")[0]
    for args in (["check"], ["env"]):
        refused(run_agent(tmp_path, env, args), 66, "SECRET_KEY_BASE", "/myapp/prod")


def test_a_prefix_one_level_too_broad_fails_closed_with_require(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    # /myapp loads PROD_SECRET_KEY_BASE and STAGING_SECRET_KEY_BASE, never SECRET_KEY_BASE.
    seed(
        boto_client,
        **{"/myapp/prod/secret_key_base": "prod-key", "/myapp/staging/secret_key_base": "stg-key"},
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/myapp",
        "SECRETS_AGENT_REQUIRE": "SECRET_KEY_BASE",
    }
    line = refused(run_agent(tmp_path, env), 66, "SECRET_KEY_BASE", "PARAMETER_STORE_PREFIX=/myapp")
    assert "prod-key" not in line and "stg-key" not in line
    # The right level starts the command with the key.
    run = run_agent(tmp_path, env | {"PARAMETER_STORE_PREFIX": "/myapp/prod"})
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["SECRET_KEY_BASE"] == "prod-key"


def test_a_required_variable_may_come_from_any_source_but_not_empty(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)  # DATABASE_URL only
    env = myapp(moto, SECRETS_AGENT_REQUIRE="SECRET_KEY_BASE")
    run = run_agent(tmp_path, env | {"SECRET_KEY_BASE": "from-the-task-definition"})
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["SECRET_KEY_BASE"] == "from-the-task-definition"
    # A reference counts too; with no prefix at all the environment is what is checked.
    only = base_env(None) | {"SECRETS_AGENT_REQUIRE": "SECRET_KEY_BASE", "SECRET_KEY_BASE": ""}
    refused(run_agent(tmp_path, only), 66, "SECRET_KEY_BASE", "no prefix")


def test_check_marks_required_variables_and_json_has_the_flag(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(
        boto_client,
        **{"/myapp/prod/secret_key_base": "k", "/myapp/prod/database_url": "postgres://db"},
    )
    env = myapp(moto, SECRETS_AGENT_REQUIRE="SECRET_KEY_BASE")
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()}
    assert rows["SECRET_KEY_BASE"][-1] == "required"
    assert rows["DATABASE_URL"][-1] != "required"
    run = run_agent(tmp_path, env, ["check", "--format", "json"])
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["ok"] is True and document["exit_code"] == 0
    assert document["required"] == ["SECRET_KEY_BASE"]
    by_name = {v["name"]: v for v in document["variables"]}
    assert by_name["SECRET_KEY_BASE"]["required"] is True
    assert by_name["SECRET_KEY_BASE"]["source"] == "ssm"
    assert by_name["SECRET_KEY_BASE"]["source_name"] == "/myapp/prod/secret_key_base"
    assert by_name["DATABASE_URL"]["required"] is False
    assert "postgres://db" not in run.stdout and '"k"' not in run.stdout


def test_check_json_exit_code_is_a_real_starts(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)  # DATABASE_URL only
    env = myapp(moto, SECRETS_AGENT_REQUIRE="SECRET_KEY_BASE")
    start = run_agent(tmp_path, env)
    check = run_agent(tmp_path, env, ["check", "--format", "json"])
    assert start.returncode == check.returncode == 66
    document = json.loads(check.stdout)
    assert document["ok"] is False and document["exit_code"] == 66
    assert "SECRET_KEY_BASE" in document["error"]
    assert "postgres://db" not in check.stdout + check.stderr
    # A configuration mistake: 78 for both, and the document says so.
    typo = base_env(moto.url) | {"PARAMETER_STORE_PREFX": "/myapp/prod"}
    start = run_agent(tmp_path, typo)
    check = run_agent(tmp_path, typo, ["check", "--format", "json"])
    assert start.returncode == check.returncode == 78
    assert json.loads(check.stdout)["exit_code"] == 78


def test_supervise_mode_refuses_to_start_without_a_required_variable(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)  # DATABASE_URL only
    env = myapp(moto, SECRETS_AGENT_REQUIRE="SECRET_KEY_BASE", SECRETS_AGENT_WATCH_INTERVAL="60")
    refused(run_agent(tmp_path, env), 66, "SECRET_KEY_BASE")


def test_a_supervise_restart_that_would_empty_a_required_variable_keeps_the_command(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="myapp/prod/web", SecretString=json.dumps({"SECRET_KEY_BASE": "one"}))
    env = base_env(moto.url) | {
        "SECRETS_MANAGER_PREFIX": "myapp/prod",
        "SECRETS_AGENT_REQUIRE": "WEB_SECRET_KEY_BASE",
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
        "SECRETS_AGENT_STOP_TIMEOUT": "3",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    with Fleet(tmp_path) as fleet:
        sup = fleet.start(env, "WEB_SECRET_KEY_BASE")  # secret web, key SECRET_KEY_BASE
        assert sup.wait_line("env WEB_", timeout=30) == "env WEB_SECRET_KEY_BASE=one"
        sm.put_secret_value(SecretId="myapp/prod/web", SecretString='{"SECRET_KEY_BASE": ""}')

        def refusals() -> list[dict[str, Any]]:
            return [e for e in sup.events() if "command kept" in json.dumps(e)]

        wait_until(lambda: len(refusals()) >= 2, timeout=30, what="two refused checks")
        assert "WEB_SECRET_KEY_BASE" in refusals()[0]["error"]
        assert len([line for line in sup.lines() if line.startswith("ready")]) == 1
        assert sup.proc.poll() is None


# -- a misspelt or unknown setting name is 78 naming the setting it was meant to be --------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("PARAMETER_STORE_PREFX", "PARAMETER_STORE_PREFIX"),
        ("SECRET_MANAGER_PREFIX", "SECRETS_MANAGER_PREFIX"),
        ("PARAMETER_STORE_PREFIXES", "PARAMETER_STORE_PREFIX"),
        ("parameter_store_prefix", "PARAMETER_STORE_PREFIX"),
    ],
)
def test_a_misspelt_prefix_is_78_naming_the_setting_not_a_start_with_nothing(
    tmp_path: Path, moto: MotoServer, typo: str, meant: str
) -> None:
    # No prefix is set: today's fast path would exec the command at once.
    env = base_env(moto.url) | {typo: "/myapp/prod"}
    refused(run_agent(tmp_path, env), 78, typo, meant)
    refused(run_agent(tmp_path, env, ["check"]), 78, typo, meant)


def test_an_unknown_agent_setting_is_78_naming_the_closest(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client, **{"/myapp/prod/secret_key_base": "k"})
    env = myapp(moto, SECRETS_AGENT_WATCH_INTERVL="300")
    refused(
        run_agent(tmp_path, env), 78, "SECRETS_AGENT_WATCH_INTERVL", "SECRETS_AGENT_WATCH_INTERVAL"
    )
    # Alone, on the no-prefix path, too; and a name nowhere near a setting.
    alone = base_env(None) | {"SECRETS_AGENT_ROTATE": "yes"}
    refused(run_agent(tmp_path, alone), 78, "SECRETS_AGENT_ROTATE", "not a setting")


def test_a_variable_unlike_any_setting_still_takes_the_fast_path(tmp_path: Path) -> None:
    env = base_env(None) | {"SECRET_KEY_BASE": "k", "CONDA_PREFIX": "/opt", "DATABASE_URL": "x"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["SECRET_KEY_BASE"] == "k"


# -- a setting that cannot take effect is 78 saying why ------------------------------------


@pytest.mark.parametrize(
    ("extra", "variable", "why"),
    [
        ({"SECRETS_AGENT_ON_CHANGE": "exit"}, "SECRETS_AGENT_ON_CHANGE", "supervise mode"),
        ({"SECRETS_AGENT_STOP_TIMEOUT": "20"}, "SECRETS_AGENT_STOP_TIMEOUT", "supervise mode"),
        ({"SECRETS_AGENT_RESTART_SPREAD": "60"}, "SECRETS_AGENT_RESTART_SPREAD", "restarts"),
        ({"SECRETS_AGENT_ECS_SERVICE": "web"}, "SECRETS_AGENT_ECS_SERVICE", "redeploy"),
        (
            {
                "SECRETS_AGENT_WATCH_INTERVAL": "60",
                "SECRETS_AGENT_ON_CHANGE": "exit",
                "SECRETS_AGENT_ECS_CLUSTER": "prod",
            },
            "SECRETS_AGENT_ECS_CLUSTER",
            "redeploy",
        ),
        ({"SECRETS_AGENT_METRICS_NAMESPACE": "App"}, "SECRETS_AGENT_METRICS_NAMESPACE", "METRICS"),
    ],
)
def test_a_supervise_or_metrics_setting_without_its_mode_is_78(
    tmp_path: Path, moto: MotoServer, extra: dict[str, str], variable: str, why: str
) -> None:
    env = myapp(moto, **extra)
    refused(run_agent(tmp_path, env), 78, variable, "cannot take effect", why)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRETS_AGENT_FILES", "RAILS_MASTER_KEY=config/master.key"),
        ("SECRETS_AGENT_ALLOW", "SECRET_KEY_BASE"),
        ("SECRETS_AGENT_OVERRIDE", "true"),
    ],
)
def test_a_setting_naming_what_is_loaded_with_nothing_to_load_is_78(
    tmp_path: Path, variable: str, value: str
) -> None:
    # A misspelt prefix is caught by its name; this is a prefix forgotten altogether.
    run = run_agent(tmp_path, base_env(None) | {variable: value})
    refused(run, 78, variable, "cannot take effect")


# -- a prefix of / is the whole account: 78 in every command -------------------------------


def test_a_root_prefix_is_78_in_every_command_and_loads_nothing(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(
        boto_client,
        **{"/myapp/prod/secret_key_base": "k", "/billing/prod/stripe_key": "another-teams"},
    )
    creds = restricted_credentials(
        boto_client, moto, "root-prefix", ["ssm:GetParametersByPath", "kms:Decrypt"]
    )
    env = base_env(moto.url) | creds | {"PARAMETER_STORE_PREFIX": "/"}
    refused(run_agent(tmp_path, env), 78, "PARAMETER_STORE_PREFIX", "every path parameter")
    for args in (["check"], ["env"], ["iam-policy", "--account-id", ACCOUNT]):
        run = run_agent(tmp_path, env, args)
        refused(run, 78, "PARAMETER_STORE_PREFIX")
        assert "parameter/*" not in run.stdout and "another-teams" not in run.stdout
    layered = env | {"PARAMETER_STORE_PREFIX": "/myapp/prod, //"}
    refused(run_agent(tmp_path, layered), 78, "PARAMETER_STORE_PREFIX")


# -- check and env with nothing configured are 78, like iam-policy -------------------------


@pytest.mark.parametrize("args", [["check"], ["env"], ["check", "--format", "json"]])
def test_check_and_env_with_nothing_configured_are_78(tmp_path: Path, args: list[str]) -> None:
    run = run_agent(tmp_path, base_env(None), args)
    assert run.returncode == 78, run.stderr
    assert "nothing to" in error_line(run)


# -- iam-policy refuses a policy IAM would refuse -------------------------------------------


def test_iam_policy_over_the_managed_policy_limit_is_78_with_its_size(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    names = {
        f"VAR_{i:03d}": f"ssm:/myapp/prod/service-{i:03d}/some_long_setting_name" for i in range(80)
    }
    env = base_env(moto.url) | names
    run = run_agent(tmp_path, env, ["iam-policy", "--account-id", ACCOUNT])
    assert run.returncode == 78, run.stderr
    line = error_line(run)
    assert "6144" in line and "characters" in line
    assert run.stdout == ""
    # A path prefix for the same parameters fits, and IAM (moto, enforcing) takes it.
    fits = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/myapp/prod"}
    run = run_agent(tmp_path, fits, ["iam-policy", "--account-id", ACCOUNT])
    assert run.returncode == 0, run.stderr
    assert len(json.dumps(json.loads(run.stdout), separators=(",", ":"))) <= 6144
