"""The agent bundle (docker/agent.Dockerfile) and the recipes of docker/examples/, for real.

The bundle is built on the Python base of tests/support/image_support.py; the recipes take it with
one
``COPY --from`` line onto a base with Ruby and Rails and **no Python at all**. Every call path of
the agent runs from the bundle in such an image, as user 1000, against the test moto server on
127.0.0.1 (``--network host``); both recipes boot the test Rails app through it. Needs docker
and debootstrap, as tests/system/test_image.py does (a failure, not a skip, without them). Secrets
are
compared by SHA-256, never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AWS_TEST_ENV
from tests.support.image_support import (
    AGENT_TAG,
    NO_PYTHON_PACKAGES,
    build_agent,
    build_base,
    build_recipe,
    docker,
    http_get,
    image_bytes,
    recipe_context,
    require_docker,
)
from tests.support.moto_server import MotoServer, free_port
from tests.system.test_rails import MAKE_CREDENTIALS

AGENT = "/opt/secrets-agent"
PREFIX = "/kptboard/prod"
MEASURED: dict[str, Any] = {}
GOAL_BYTES = 40 * 2**20  # what the bundle may add to an image


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Built:
    base: str  # Ruby and Rails, no Python
    recipes: dict[str, str]
    master_key: str
    credentials: dict[str, str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    require_docker()
    python_base, _ = build_base()
    base, _ = build_base(NO_PYTHON_PACKAGES)
    MEASURED["agent_build_seconds"] = round(build_agent(python_base), 1)
    context = recipe_context(base, tmp_path_factory.mktemp("recipes"))
    # Rails' own encrypted credentials, made at test time; the key goes to SSM, never the image.
    credentials = {"secret_key_base": secrets.token_hex(64), "api_token": secrets.token_hex(12)}
    made = subprocess.run(
        ["ruby", "-e", MAKE_CREDENTIALS],
        input="".join(f"{k}: {v}\n" for k, v in credentials.items()),
        capture_output=True,
        text=True,
        cwd=str(context),
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    recipes = {}
    for name in ("rails-7.1", "single-stage"):
        tag, seconds, size = build_recipe(name, base, context)
        recipes[name] = tag
        MEASURED[f"recipe_{name}_build_seconds"] = round(seconds, 1)
        MEASURED[f"recipe_{name}_adds_mib"] = round((size - image_bytes(base)) / 2**20, 1)
    MEASURED["bundle_mib"] = round(image_bytes(AGENT_TAG) / 2**20, 1)
    yield Built(base, recipes, made.stdout, credentials)
    report = os.environ.get("BUNDLE_TEST_REPORT")
    if report:
        Path(report).write_text(json.dumps(MEASURED, indent=2) + "\n")


def aws_env(moto: MotoServer, **extra: str) -> dict[str, str]:
    return {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": moto.url,
        **extra,
    }


def run(
    image: str, env: Mapping[str, str], *argv: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker run`` as user 1000 on the host's network, the agent's own program first."""
    args = ["docker", "run", "--rm", "-i", "--network", "host", "--user", "1000"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    args += ["--entrypoint", argv[0], image, *argv[1:]]
    return subprocess.run(
        args, input=stdin or "", capture_output=True, text=True, timeout=120, check=False
    )


def exec_env(image: str, env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """``docker-entrypoint env -0``: the environment the command received, and the stderr."""
    proc = run(image, env, f"{AGENT}/docker-entrypoint", "env", "-0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pairs = (entry.partition("=") for entry in proc.stdout.split("\0") if entry)
    return {key: value for key, _, value in pairs}, proc.stderr


def test_the_image_has_no_python_and_the_bundle_says_its_version(built: Built) -> None:
    from secrets_agent import __version__

    image = built.recipes["single-stage"]
    probe = run(image, {}, "sh", "-c", "ls /usr/bin /usr/local/bin | grep -c '^python' || true")
    assert probe.stdout.strip() == "0", probe.stdout
    for program in ("secrets-agent", "docker-entrypoint"):
        proc = run(image, {}, f"{AGENT}/{program}", "--version")
        assert proc.returncode == 0 and proc.stdout == f"secrets-agent {__version__}\n", proc
    assert MEASURED["bundle_mib"] * 2**20 <= GOAL_BYTES, MEASURED


def test_the_bundle_loads_its_own_libraries_not_the_bases(built: Built) -> None:
    # The base has libssl, libffi, zlib ... of its own (Ruby needs them): the interpreter and
    # its extension modules must still load the bundle's, found through their RUNPATH.
    image = built.recipes["single-stage"]
    dynload = f"{AGENT}/lib/python3.11/lib-dynload"
    script = (
        f"for f in {AGENT}/bin/python3.11 {dynload}/_ssl.* {dynload}/_ctypes.*; do "
        '/lib64/ld-linux-x86-64.so.2 --list "$f" || exit 1; done'
    )
    proc = run(image, {}, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    found = {
        line.split()[0]: posixpath.normpath(line.split()[2])  # .../bin/../lib/libz.so.1
        for line in proc.stdout.splitlines()
        if " => " in line
    }
    for name in ("libz.so.1", "libexpat.so.1", "libssl.so.3", "libcrypto.so.3", "libffi.so.8"):
        assert found[name] == f"{AGENT}/lib/{name}", proc.stdout


def test_every_call_path_runs_from_the_bundle(
    built: Built, moto: MotoServer, boto_client: Any
) -> None:
    image = built.recipes["single-stage"]
    ssm, sm = boto_client("ssm"), boto_client("secretsmanager")
    # SSM, a path: GetParametersByPath.
    ssm.put_parameter(Name=f"{PREFIX}/secret_key_base", Value="path-v", Type="SecureString")
    got, err = exec_env(image, aws_env(moto, PARAMETER_STORE_PREFIX=PREFIX))
    assert got["SECRET_KEY_BASE"] == "path-v", err
    # The command gets the environment the agent was given, on either path: the bundle finds
    # its libraries without LD_LIBRARY_PATH (one would hand the app the bundle's libssl).
    assert "LD_LIBRARY_PATH" not in got, sorted(got)
    fast, _ = exec_env(image, {"LD_LIBRARY_PATH": "/usr/local/lib/app"})
    assert fast["LD_LIBRARY_PATH"] == "/usr/local/lib/app"
    # SSM, the old blog's name prefix: DescribeParameters and GetParameters.
    ssm.put_parameter(Name="kptboard-rails.database.url", Value="names-v", Type="SecureString")
    got, err = exec_env(image, aws_env(moto, PARAMETER_STORE_PREFIX="kptboard-rails"))
    assert got["DATABASE_URL"] == "names-v", err
    # Secrets Manager, a prefix (a JSON object expanded) and a reference.
    sm.create_secret(Name="kptboard/prod/database", SecretString=json.dumps({"password": "pw"}))
    sm.create_secret(Name="shared/token", SecretString="ref-v")
    env = aws_env(
        moto, SECRETS_MANAGER_PREFIX="kptboard/prod", API_TOKEN="secretsmanager:shared/token"
    )
    got, err = exec_env(image, env)
    assert (got["DATABASE_PASSWORD"], got["API_TOKEN"]) == ("pw", "ref-v"), err
    # KMS through the Encryption SDK: the bundle encrypts, then decrypts at start.
    key = boto_client("kms").create_key()["KeyMetadata"]["Arn"]
    enc = run(
        image,
        aws_env(moto),
        f"{AGENT}/secrets-agent", "encrypt", "--key-id", key, "--name", "SMTP_PASSWORD",
        stdin="aesdk-v",
    )  # fmt: skip
    assert enc.returncode == 0 and enc.stdout.startswith("aesdk:"), enc.stderr[-3000:]
    env = aws_env(moto, SMTP_PASSWORD=enc.stdout.strip(), SECRETS_AGENT_KMS_KEY_ARNS=key)
    got, err = exec_env(image, env)
    assert got["SMTP_PASSWORD"] == "aesdk-v", err
    # STS, in the credential chain: a web identity role instead of keys.
    env = aws_env(
        moto,
        PARAMETER_STORE_PREFIX=PREFIX,
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/app",
        AWS_WEB_IDENTITY_TOKEN_FILE="/etc/os-release",  # any text: moto does not verify it
    )
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    got, err = exec_env(image, env)
    assert got["SECRET_KEY_BASE"] == "path-v", err
    # ECS, redeploy mode's start: DescribeServices answers that the named service is missing.
    boto_client("ecs").create_cluster(clusterName="kptboard")
    redeploy = aws_env(
        moto,
        PARAMETER_STORE_PREFIX=PREFIX,
        SECRETS_AGENT_WATCH_INTERVAL="30",
        SECRETS_AGENT_ON_CHANGE="redeploy",
        SECRETS_AGENT_ECS_CLUSTER="kptboard",
        SECRETS_AGENT_ECS_SERVICE="no-such-service",
    )
    proc = run(image, redeploy, f"{AGENT}/docker-entrypoint", "true")
    assert proc.returncode == 78, proc.stderr[-3000:]
    assert "no-such-service" in proc.stderr.splitlines()[-1]
    policy = run(
        image, redeploy, f"{AGENT}/secrets-agent", "iam-policy", "--account-id", "123456789012"
    )
    assert policy.returncode == 0, policy.stderr[-3000:]
    assert "ecs:UpdateService" in policy.stdout
    # check, and the failures: nothing under a prefix (66), an invalid setting (78).
    check = run(
        image, aws_env(moto, PARAMETER_STORE_PREFIX=PREFIX), f"{AGENT}/secrets-agent", "check"
    )
    assert check.returncode == 0 and "SECRET_KEY_BASE" in check.stdout, check.stderr[-3000:]
    none = run(
        image, aws_env(moto, PARAMETER_STORE_PREFIX="/none"), f"{AGENT}/docker-entrypoint", "true"
    )
    assert none.returncode == 66, none.stderr[-3000:]
    bad = aws_env(moto, PARAMETER_STORE_PREFIX=PREFIX, SECRETS_AGENT_TIMEOUT="soon")
    assert run(image, bad, f"{AGENT}/docker-entrypoint", "true").returncode == 78
    for value in ("path-v", "names-v", "pw", "ref-v", "aesdk-v"):
        assert value not in check.stdout + check.stderr + enc.stderr


class Server:
    """A recipe's image serving the test app on a free port of the host's network."""

    def __init__(self, image: str, env: Mapping[str, str], command: list[str]) -> None:
        self.port = free_port()
        self.name = f"secrets-agent-test-{os.urandom(4).hex()}"
        args = ["run", "-d", "--name", self.name, "--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        docker(*args, image, *command, "-b", "127.0.0.1", "-p", str(self.port))

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.port, path)

    def wait_ready(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get("/health")[0]
            except OSError:
                state = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
                if state.stdout.strip() != "true":
                    raise AssertionError(f"container exited: {self.logs()}") from None
                time.sleep(0.2)
        raise AssertionError(f"no HTTP answer within {timeout}s: {self.logs()}")

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (status, self.logs())
        return json.loads(body)

    def exec(self, *argv: str) -> str:
        return docker("exec", self.name, *argv).stdout

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return (proc.stdout + proc.stderr)[-4000:]

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def test_rails_7_1_recipe_boots_as_user_1000_with_the_key_file_and_db_prepare_sees_the_db(
    built: Built, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    database_url = "postgres://app:" + secrets.token_hex(8) + "@db/app"
    ssm.put_parameter(
        Name=f"{PREFIX}/rails_master_key", Value=built.master_key, Type="SecureString"
    )
    ssm.put_parameter(Name=f"{PREFIX}/database_url", Value=database_url, Type="SecureString")
    env = aws_env(
        moto,
        PARAMETER_STORE_PREFIX=PREFIX,
        SECRETS_AGENT_FILES="RAILS_MASTER_KEY=tmp/master.key",
        SECRETS_AGENT_LOG_FORMAT="json",
    )
    app = Server(built.recipes["rails-7.1"], env, ["./bin/rails", "server"])
    try:
        assert app.wait_ready() == 200, app.logs()
        # Rails decrypted its credentials with the key file: secret_key_base came from them.
        secret = app.json("/secret")
        assert secret["secret_key_base_sha256"] == sha(built.credentials["secret_key_base"])
        assert app.json("/credential/api_token")["sha256"] == sha(built.credentials["api_token"])
        assert app.json("/env/RAILS_MASTER_KEY")["present"] is False
        assert app.json("/env/DATABASE_URL")["sha256"] == sha(database_url)
        # bin/docker-entrypoint ran after the agent, with DATABASE_URL, then exec'd the server.
        assert f"db:prepare with DATABASE_URL sha256:{sha(database_url)[:16]}" in app.logs()
        assert secret["pid"] == 1
        assert app.exec("id", "-u").strip() == "1000"
        assert app.exec("stat", "-c", "%u %a", "tmp/master.key").split() == ["1000", "400"]
        logs = app.logs()
    finally:
        app.remove()
    for value in (built.master_key, database_url, *built.credentials.values()):
        assert value not in logs


def test_single_stage_recipe_boots_as_user_1000_in_supervise_mode(
    built: Built, moto: MotoServer, boto_client: Any
) -> None:
    key = secrets.token_hex(64)
    boto_client("ssm").put_parameter(
        Name=f"{PREFIX}/secret_key_base", Value=key, Type="SecureString"
    )
    # Supervise mode resolves in a check process: the bundle starts itself for it.
    env = aws_env(moto, PARAMETER_STORE_PREFIX=PREFIX, SECRETS_AGENT_WATCH_INTERVAL="30")
    app = Server(built.recipes["single-stage"], env, ["bundle", "exec", "rails", "server"])
    try:
        assert app.wait_ready() == 200, app.logs()
        secret = app.json("/secret")
        assert secret["secret_key_base_sha256"] == sha(key)
        assert secret["pid"] != 1
        assert "/opt/secrets-agent/docker-entrypoint" in app.exec("cat", "/proc/1/cmdline")
        assert app.exec("id", "-u").strip() == "1000"
        logs = app.logs()
    finally:
        app.remove()
    assert key not in logs
