"""One version, said everywhere a user or an operator looks: ``--version`` (without the AWS
SDK), the resolution's summary line, the end of the one error line, every EMF document; and
pyproject.toml reads it from the package instead of writing it again."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from secrets_agent import __version__
from secrets_agent.output.metrics import Emf
from tests.conftest import ENTRYPOINT, ROOT, base_env, run_agent
from tests.support.moto_server import MotoServer


@pytest.mark.parametrize(
    "argv",
    [[str(ENTRYPOINT), "--version"], ["-m", "secrets_agent", "--version"]],
    ids=["docker-entrypoint.py", "secrets-agent"],
)
def test_version_is_printed_without_loading_the_aws_sdk(argv: list[str]) -> None:
    # -X importtime lists every module imported; botocore must not be among them.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
        env=base_env(None),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == f"secrets-agent {__version__}\n"
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert "secrets_agent" in imported  # the listing is real
    assert not [name for name in imported if name.startswith(("botocore", "boto3"))]


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    assert getattr(__import__(module), name) == __version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{__version__}] - " in changelog


def test_summary_and_error_lines_say_the_version(
    tmp_path: Path, moto: MotoServer, boto_client: object
) -> None:
    boto_client("ssm").put_parameter(Name="/v/key", Value="x", Type="SecureString")  # type: ignore[operator]
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/v", "SECRETS_AGENT_LOG_FORMAT": "json"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    summary = [json.loads(line) for line in run.stderr.splitlines()]
    assert [e["version"] for e in summary if e["event"] == "secrets resolved"] == [__version__]

    # JSON mode: the error event carries it as a field; text mode: the one line ends with it.
    failed = run_agent(tmp_path, env | {"PARAMETER_STORE_PREFIX": "/none"})
    assert failed.returncode == 66
    assert json.loads(failed.stderr.splitlines()[-1])["version"] == __version__
    text = run_agent(
        tmp_path, env | {"PARAMETER_STORE_PREFIX": "/none", "SECRETS_AGENT_LOG_FORMAT": "text"}
    )
    assert text.returncode == 66
    assert text.stderr.splitlines()[-1].endswith(f"(secrets-agent {__version__})")


def test_every_emf_document_carries_the_version_as_a_property() -> None:
    doc = Emf("SecretsAgent", (("TaskFamily", "app"),)).fields({"Checks": 1}, timestamp_ms=1)
    assert doc["AgentVersion"] == __version__
    directive = doc["_aws"]["CloudWatchMetrics"][0]  # type: ignore[index]
    assert directive["Dimensions"] == [["TaskFamily"]]  # a property, not a dimension
    assert "AgentVersion" not in [m["Name"] for m in directive["Metrics"]]
