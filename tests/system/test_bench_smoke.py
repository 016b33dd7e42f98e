"""The start-up benchmark runs end to end with tiny counts (no chart): every approach exports
the expected variables (the harness verifies that before timing) and the report is written.

The harness builds (or reuses) its virtualenvs under ``.venv-bench/`` from the locks, so the
first run installs them; the Go anchor needs Debian's ``golang-go`` and
``golang-github-aws-aws-sdk-go-dev`` (``.ci/run`` installs them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.moto_server import MotoServer

RUN = ROOT / "bench" / "run.py"


@pytest.mark.skipif(
    not (Path("/usr/bin/time").exists() and shutil.which("go")),
    reason="the benchmark needs GNU time and Go (golang-go, golang-github-aws-aws-sdk-go-dev)",
)
def test_bench_harness_runs_with_one_parameter(moto: MotoServer, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--counts=0,1",
            "--runs=1",
            "--shell-runs=0:1,1:1",
            "--no-chart",
            f"--moto-url={moto.url}",
            f"--out={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=900,  # the first run builds the venvs from the locks
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    for approach in ("floor", "botocore", "agent", "plain_boto3", "go", "shell"):
        for count in ("0", "1"):
            [[wall, rss_kib, cpu]] = result["samples"][approach][count]
            assert 0 < wall < 60 and rss_kib > 1000 and cpu >= 0
    assert set(result["idle"]) == {"floor", "agent", "plain_boto3"}
    assert all(v["VmRSS"] > 1000 for v in result["idle"].values())
    found = result["versions"]
    venv = ROOT / ".venv-bench" / "runtime"
    assert found["site_packages"].startswith(str(venv))
    assert found["base_prefix"] != str(venv)
    assert found["load_before"] and found["load_after"] and found["busy"] in ("yes", "no")
    assert f"site_packages: {found['site_packages']}" in proc.stderr
    assert "load average before:" in proc.stderr and "load average after:" in proc.stderr
    report = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| no prefix: agent / `python3 -c pass` |" in report
    assert "| 1 parameters: agent / plain boto3 |" in report
    assert "| 1 | " in report and "Go anchor" in report
    assert not (tmp_path / "chart.png").exists()


def test_bench_refuses_a_shim_and_the_global_site_packages(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").symlink_to(sys.executable)
    common = [sys.executable, str(RUN), "--no-chart", f"--venvs={tmp_path / 'venvs'}"]
    common += ["--approaches=floor,agent", f"--out={tmp_path / 'out'}"]
    shim = subprocess.run(
        [*common, f"--base-python={shims / 'python3'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shim.returncode != 0
    assert "refusing to run" in shim.stderr and "shim" in shim.stderr
    base = Path(getattr(sys, "base_prefix", sys.prefix))
    if not (base / "bin" / "python3").exists():
        pytest.skip(f"no python3 under {base}")
    glob = subprocess.run([*common, f"--venv={base}"], capture_output=True, text=True, timeout=60)
    assert glob.returncode != 0
    assert "refusing to run" in glob.stderr and "not a venv" in glob.stderr
    assert not (tmp_path / "venvs").exists() and not (tmp_path / "out").exists()


def test_old_entrypoint_exports_none_for_a_missing_parameter(moto: MotoServer) -> None:
    """The behaviour the agent replaces: the blog's script boots with the text 'None'."""
    aws = ROOT / ".venv-bench" / "tools" / "bin" / "aws"
    if not aws.exists():
        aws_on_path = shutil.which("aws")
        if aws_on_path is None:
            pytest.skip("no aws CLI (run bench/run.py once: it builds .venv-bench/tools)")
        aws = Path(aws_on_path)
    env = {
        "PATH": f"{aws.parent}:/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PARAMETER_STORE_PREFIX": "/nothing/here",
        "BENCH_COUNT": "1",
        "HOME": os.environ.get("HOME", "/root"),
    }
    proc = subprocess.run(
        [
            "/bin/bash",
            str(ROOT / "bench" / "old-entrypoint.sh"),
            "/bin/sh",
            "-c",
            'printf %s "$PARAM_000"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, "None")
