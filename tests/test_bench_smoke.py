"""The start-up benchmark runs end to end with tiny counts (no chart): every approach exports
the expected variables (the harness verifies that before timing) and the report is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.moto_server import MotoServer

AWS_CLI = Path(sys.executable).parent / "aws"
pytestmark = pytest.mark.skipif(
    not (AWS_CLI.exists() and Path("/usr/bin/time").exists()),
    reason="the benchmark needs the aws CLI beside the interpreter and GNU time",
)


def test_bench_harness_runs_with_one_parameter(moto: MotoServer, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--counts=0,1",
            "--runs=1",
            "--shell-runs=0:1,1:1",
            "--no-chart",
            f"--moto-url={moto.url}",
            f"--out={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    for approach in ("floor", "agent", "plain_boto3", "shell"):
        for count in ("0", "1"):
            [[wall, rss_kib, cpu]] = result["samples"][approach][count]
            assert 0 < wall < 60 and rss_kib > 1000 and cpu >= 0
    assert set(result["idle"]) == {"floor", "agent", "plain_boto3"}
    assert all(v["VmRSS"] > 1000 for v in result["idle"].values())
    report = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| no prefix: agent / `python3 -c pass` |" in report
    assert not (tmp_path / "chart.png").exists()


def test_old_entrypoint_exports_none_for_a_missing_parameter(moto: MotoServer) -> None:
    """The behaviour the agent replaces: the blog's script boots with the text 'None'."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PARAMETER_STORE_PREFIX": "/nothing/here",
        "BENCH_COUNT": "1",
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
