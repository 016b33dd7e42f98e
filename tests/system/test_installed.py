"""Smoke cases against an installed agent: the wheel in a fresh virtualenv, no source tree.

``.ci/run`` builds the sdist and the wheel, installs the wheel with ``requirements/runtime.lock``
into a virtualenv in a temporary folder and sets ``WHEEL_INSTALL_BIN`` to its ``bin``;
without it these tests are skipped (the rest of the suite runs the source tree). The scripts
run with a working directory outside the source tree and without ``PYTHONPATH``, so what runs
is what the wheel installed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AWS_TEST_ENV, ROOT
from tests.support.moto_server import MotoServer

INSTALLED = os.environ.get("WHEEL_INSTALL_BIN", "")
pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="WHEEL_INSTALL_BIN is not set (.ci/run sets it)"
)
PREFIX = "/kptboard/prod"


def version() -> str:
    from secrets_agent import __version__

    return __version__


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )


def clean_env(moto: MotoServer | None = None, **extra: str) -> dict[str, str]:
    """No PYTHONPATH, no inherited AWS or agent settings."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/root"),
        **AWS_TEST_ENV,
    }
    if moto is not None:
        env["AWS_ENDPOINT_URL"] = moto.url
    return env | extra


def child_env(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """What ``env -0`` printed: the environment the command received."""
    pairs = (entry.partition("=") for entry in proc.stdout.split("\0") if entry)
    return {key: value for key, _, value in pairs}


def bin_path(name: str) -> str:
    path = Path(INSTALLED) / name
    assert path.is_file() and os.access(path, os.X_OK), f"{name} is not installed in {INSTALLED}"
    return str(path)


def test_the_installed_package_is_not_the_source_tree() -> None:
    python = bin_path("python")
    proc = run([python, "-c", "import secrets_agent; print(secrets_agent.__file__)"], clean_env())
    assert proc.returncode == 0, proc.stderr
    where = Path(proc.stdout.strip()).resolve()
    assert "site-packages" in where.parts and ROOT not in where.parents, where
    first = Path(bin_path("docker-entrypoint.py")).read_text().splitlines()[0]
    assert first.startswith(f"#!{python}"), first  # pip pointed it at the virtualenv


@pytest.mark.parametrize("script", ["secrets-agent", "docker-entrypoint.py"])
def test_version(script: str) -> None:
    proc = run([bin_path(script), "--version"], clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"secrets-agent {version()}\n"


def test_no_prefix_execs_the_command() -> None:
    env = clean_env(MARKER="plain")
    proc = run([bin_path("docker-entrypoint.py"), "env", "-0"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert child_env(proc) == env


def test_two_parameters_reach_the_command_and_check_names_them(
    moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    values = {"SECRET_KEY_BASE": "installed-key-base\nline 2", "DATABASE_URL": "postgres://x@db/y"}
    for name, value in values.items():
        ssm.put_parameter(Name=f"{PREFIX}/{name.lower()}", Value=value, Type="SecureString")
    env = clean_env(moto, PARAMETER_STORE_PREFIX=PREFIX, SECRETS_AGENT_LOG_FORMAT="json")

    proc = run([bin_path("docker-entrypoint.py"), "env", "-0"], env)
    assert proc.returncode == 0, proc.stderr
    got = child_env(proc)
    assert {name: got.get(name) for name in values} == values
    assert f'"version":"{version()}"' in proc.stderr  # the summary line says which agent
    for value in values.values():
        assert value not in proc.stderr

    check = run([bin_path("secrets-agent"), "check"], env)
    assert check.returncode == 0, check.stderr
    for name in values:
        assert name in check.stdout
    for value in values.values():
        assert value not in check.stdout + check.stderr


def test_nothing_under_the_prefix_is_66_and_the_line_names_the_version(moto: MotoServer) -> None:
    env = clean_env(
        moto, PARAMETER_STORE_PREFIX="/myapp/none", SECRETS_AGENT_LOG_FORMAT="text"
    )
    proc = run([bin_path("docker-entrypoint.py"), "env", "-0"], env)
    assert proc.returncode == 66, proc.stderr
    assert proc.stdout == ""  # the command never ran
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("secrets-agent: ") and line.endswith(f"(secrets-agent {version()})")


def test_an_invalid_setting_is_78(moto: MotoServer) -> None:
    env = clean_env(moto, PARAMETER_STORE_PREFIX=PREFIX, SECRETS_AGENT_TIMEOUT="soon")
    proc = run([bin_path("docker-entrypoint.py"), "env", "-0"], env)
    assert proc.returncode == 78, proc.stderr
    assert proc.stdout == ""
    assert "SECRETS_AGENT_TIMEOUT" in proc.stderr.splitlines()[-1]
