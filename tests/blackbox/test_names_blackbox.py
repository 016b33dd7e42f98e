"""Black-box, against a real moto server: which names a parameter may set (protected names and
SECRETS_AGENT_ALLOW), an empty inherited variable against a loaded secret, SSM ARNs that are not
parameters, and iam-policy agreeing with exec on cross-account SSM ARNs.

The protected vectors run the real bash and Ruby: without protection a parameter named
``SHELLOPTS``, ``PS4`` or ``BUNDLE_GEMFILE`` makes them print another secret's value.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentRun, base_env, run_agent, started
from tests.support.moto_server import MotoServer
from tests.support.seed import put, put_all

ACCOUNT = "123456789012"  # moto's default account
OTHER_ACCOUNT = "210987654321"


def canary() -> str:
    return "canary-" + os.urandom(8).hex()


def assert_refused(run: AgentRun, code: int, *named: str, secret: str | None = None) -> None:
    assert run.returncode == code, (run.returncode, run.stderr)
    assert not run.ran
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])
    if secret is not None:
        assert secret not in run.stdout + run.stderr


# --------------------------------------------------------------------- protected names

# Every name the hardening report found accepted, as a prefix parameter would set it.
REPORTED = [
    "SHELLOPTS",
    "PS4",
    "BASH_XTRACEFD",
    "PROMPT_COMMAND",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_KEY_0",
    "GIT_CONFIG_VALUE_0",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_GLOBAL",
    "JDK_JAVA_OPTIONS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "HOSTALIASES",
    "GCONV_PATH",
    "BUNDLE_GEMFILE",
    "GEM_HOME",
    "GEM_PATH",
    "RUBYGEMS_GEMDEPS",
    "NODE_PATH",
    "PERL5LIB",
    "OPENSSL_CONF",
    "SSL_CERT_FILE",
    "LOCPATH",
    "NLSPATH",
]


@pytest.mark.parametrize("name", REPORTED)
def test_each_reported_name_is_refused_with_65_naming_it(
    tmp_path: Path, moto: MotoServer, boto_client: Any, name: str
) -> None:
    secret = canary()
    ssm = boto_client("ssm")
    put(ssm, "/app/secret_key_base", secret)
    put(ssm, f"/app/{name.lower()}", "x")
    run = run_agent(tmp_path, base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"})
    assert_refused(run, 65, name, f"/app/{name.lower()}", "protected", secret=secret)


@pytest.mark.parametrize("name", ["SHELLOPTS", "https_proxy", "GIT_CONFIG_KEY_0"])
def test_a_reference_into_a_protected_name_is_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, name: str
) -> None:
    put(boto_client("ssm"), "/ref/x", canary())
    run = run_agent(tmp_path, base_env(moto.url) | {name: "ssm:/ref/x"})
    assert_refused(run, 65, name, "protected")


def run_vector(
    tmp_path: Path, moto: MotoServer, boto_client: Any, name: str, value: str,
    command: list[str],
) -> tuple[AgentRun, str, Path]:
    """Load SECRET_KEY_BASE=<canary> and ``name``=``value`` from a prefix, then run ``command``
    (which also touches a marker file when it runs)."""
    secret = canary()
    ssm = boto_client("ssm")
    put(ssm, "/app/secret_key_base", secret)
    put(ssm, f"/app/{name.lower()}", value)
    marker = tmp_path / "ran"
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app", "MARKER": str(marker)}
    return run_agent(tmp_path, env, command=command), secret, marker


def test_shellopts_xtrace_cannot_make_bash_print_a_secret(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    script = 'touch "$MARKER"; key=$SECRET_KEY_BASE; :'
    run, secret, marker = run_vector(
        tmp_path, moto, boto_client, "SHELLOPTS", "xtrace", ["bash", "-c", script]
    )
    assert_refused(run, 65, "SHELLOPTS", secret=secret)
    assert not marker.exists()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv is missing")
def test_ps4_cannot_run_code_in_a_bash_started_as_another_user(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    # bash ignores an inherited PS4 as root only: the app's non-root shells expand it.
    nobody = "exec setpriv --reuid=65534 --regid=65534 --clear-groups bash -xc :"
    command = ["sh", "-c", f'touch "$MARKER"; {nobody}']
    run, secret, marker = run_vector(
        tmp_path, moto, boto_client, "PS4", '+$(printf %s "$SECRET_KEY_BASE") ', command
    )
    assert_refused(run, 65, "PS4", secret=secret)
    assert not marker.exists()


def require_ruby() -> str:
    ruby = shutil.which("ruby")
    if ruby is None:
        if os.environ.get("CI"):
            pytest.fail("ruby missing: .ci/run must install ruby")
        pytest.skip("Debian's ruby is not installed")
    return ruby


def test_bundle_gemfile_cannot_make_bundler_print_the_environment(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    # What `bundle exec` and every Rails app's config/boot.rb do first: require bundler/setup.
    # Bundler evaluates BUNDLE_GEMFILE, and its error shows the file: here, every variable.
    ruby = require_ruby()
    command = [ruby, "-e", 'File.write(ENV["MARKER"], ""); require "bundler/setup"']
    run, secret, marker = run_vector(
        tmp_path, moto, boto_client, "BUNDLE_GEMFILE", "/proc/self/environ", command
    )
    assert_refused(run, 65, "BUNDLE_GEMFILE", secret=secret)
    assert not marker.exists()


def test_shellopts_cannot_reach_a_bash_that_a_ruby_app_starts(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ruby = require_ruby()
    script = 'File.write(ENV["MARKER"], ""); system("bash", "-c", "key=$SECRET_KEY_BASE; :")'
    run, secret, marker = run_vector(
        tmp_path, moto, boto_client, "SHELLOPTS", "xtrace", [ruby, "-e", script]
    )
    assert_refused(run, 65, "SHELLOPTS", secret=secret)
    assert not marker.exists()


def test_the_allowlist_names_every_variable_outside_it(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    for key in ("database_url", "rails_env", "rails_max_threads", "redis_url", "api_key"):
        put(ssm, f"/app/{key}", canary())
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRETS_AGENT_ALLOW": "DATABASE_URL, RAILS_*",
    }
    run = run_agent(tmp_path, env)
    assert_refused(run, 65, "SECRETS_AGENT_ALLOW", "API_KEY", "/app/api_key", "REDIS_URL",
                   "/app/redis_url")
    assert "DATABASE_URL" not in run.stderr and "RAILS_ENV" not in run.stderr

    allowed = run_agent(tmp_path, env | {"SECRETS_AGENT_ALLOW": "DATABASE_URL,RAILS_*,*_KEY,"
                                                                "REDIS_URL"})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.child_env is not None
    assert {"DATABASE_URL", "RAILS_ENV", "RAILS_MAX_THREADS", "REDIS_URL", "API_KEY"} <= set(
        allowed.child_env
    )


def test_the_allowlist_covers_references_and_never_unlocks_a_protected_name(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    put(ssm, "/ref/token", canary())
    put(ssm, "/app/shellopts", "xtrace")
    env = base_env(moto.url) | {"TOKEN": "ssm:/ref/token", "SECRETS_AGENT_ALLOW": "DATABASE_URL"}
    assert_refused(run_agent(tmp_path, env), 65, "SECRETS_AGENT_ALLOW", "TOKEN")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app", "SECRETS_AGENT_ALLOW": "*"}
    assert_refused(run_agent(tmp_path, env), 65, "SHELLOPTS", "protected")


@pytest.mark.parametrize("value", [",", "DATABASE-URL", "RAILS_.*", "A;B"])
def test_a_malformed_allowlist_is_78_naming_it(
    tmp_path: Path, moto: MotoServer, boto_client: Any, value: str
) -> None:
    put(boto_client("ssm"), "/app/database_url", canary())
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app", "SECRETS_AGENT_ALLOW": value}
    assert_refused(run_agent(tmp_path, env), 78, "SECRETS_AGENT_ALLOW")


# --------------------------------------------------------------------- precedence


def test_an_empty_inherited_variable_does_not_hold_a_name_against_a_secret(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    secret = canary()
    ssm = boto_client("ssm")
    put_all(ssm, {"/app/secret_key_base": secret, "/app/database_url": "postgres://from-ssm"})
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRET_KEY_BASE": "",  # a task-definition template left empty
        "DATABASE_URL": "postgres://from-task-definition",
    }
    run = run_agent(tmp_path, env)
    child = started(run)
    assert child["SECRET_KEY_BASE"] == secret
    assert child["DATABASE_URL"] == "postgres://from-task-definition"  # a value wins
    check = run_agent(tmp_path, env, ["check"])
    assert check.returncode == 0, check.stderr
    rows = {line.split()[0]: line.split()[1] for line in check.stdout.splitlines()}
    assert rows["SECRET_KEY_BASE"] == "ssm"
    assert rows["DATABASE_URL"] == "environment"


# --------------------------------------------------------------------- SSM ARNs

OTHER_SSM_ARNS = {
    "RUN_DOCUMENT": f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/x",
    "AUTOMATION": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/x",
    "AUTOMATION_VERSION": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/x:$DEFAULT",
    "AWS_DOCUMENT_ARN": "arn:aws:ssm:us-east-1::document/AWS-RunShellScript",
}


def test_ssm_arns_that_are_not_parameters_pass_through_untouched(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    alone = run_agent(tmp_path, base_env(moto.url) | OTHER_SSM_ARNS)
    child = started(alone)
    assert {k: child[k] for k in OTHER_SSM_ARNS} == OTHER_SSM_ARNS

    put(boto_client("ssm"), "/app/db", "from-ssm")
    env = base_env(moto.url) | OTHER_SSM_ARNS | {
        "DB": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/db",
        "PARAMETER_STORE_PREFIX": "/app",
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert {k: run.child_env[k] for k in OTHER_SSM_ARNS} == OTHER_SSM_ARNS
    assert run.child_env["DB"] == "from-ssm"


def test_a_malformed_parameter_arn_is_still_65(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"DB": "arn:aws:ssm:us-east-1:parameter/app/db"}  # no account
    assert_refused(run_agent(tmp_path, env), 65, "DB")


# --------------------------------------------------------------------- iam-policy and exec


def test_iam_policy_refuses_a_cross_account_ssm_arn_as_exec_does(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client("ssm"), "/shared/db", canary())
    env = base_env(moto.url) | {
        "AWS_REGION": "us-east-1",
        "DB": f"arn:aws:ssm:us-east-1:{OTHER_ACCOUNT}:parameter/shared/db",
    }
    exec_run = run_agent(tmp_path, env)
    assert_refused(exec_run, 66, "DB", OTHER_ACCOUNT)
    policy = run_agent(tmp_path, env, ["iam-policy", "--account-id", ACCOUNT])
    assert policy.stdout == ""
    assert_refused(policy, 66, "DB", OTHER_ACCOUNT, "cross-account SSM ARNs are not supported")


def test_iam_policy_grants_an_ssm_arn_in_the_account_exec_reads(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client("ssm"), "/shared/db", "v")
    env = base_env(moto.url) | {
        "AWS_REGION": "us-east-1",
        "DB": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/shared/db",
    }
    assert run_agent(tmp_path, env).returncode == 0
    policy = run_agent(tmp_path, env, ["iam-policy", "--account-id", ACCOUNT])
    assert policy.returncode == 0, policy.stderr
    resources = json.dumps(json.loads(policy.stdout))
    assert f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/shared/db" in resources

    # Without --account-id, Terraform's caller identity stands for the account exec reads in,
    # never the account written in the ARN.
    other = env | {"DB": f"arn:aws:ssm:us-east-1:{OTHER_ACCOUNT}:parameter/shared/db"}
    terraform = run_agent(tmp_path, other, ["iam-policy", "--format", "terraform"])
    assert terraform.returncode == 0, terraform.stderr
    assert OTHER_ACCOUNT not in terraform.stdout
    assert (
        "arn:aws:ssm:us-east-1:${data.aws_caller_identity.secrets_agent.account_id}"
        ":parameter/shared/db" in terraform.stdout
    )
    as_json = run_agent(tmp_path, other, ["iam-policy"])
    assert_refused(as_json, 78, "--account-id")
