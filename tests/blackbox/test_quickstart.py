"""The README's quick start, run as written: the block after ``<!-- quick-start -->``, in bash,
against the test moto server, with ``secrets-agent`` and ``docker-entrypoint.py`` on PATH as the
real entrypoint of this checkout and a fake ``bundle`` that stands in for Rails and reports
what it received."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ENTRYPOINT, ROOT, base_env
from tests.support.moto_server import MotoServer

KEY = "quick-start-secret-key-base-0123456789abcdef"

FAKE_RAILS = """#!{python}
import hashlib, json, os, sys
value = os.environ.get("SECRET_KEY_BASE")
digest = value and hashlib.sha256(value.encode()).hexdigest()
with open({report!r}, "w") as f:
    json.dump({{"argv": sys.argv[1:], "key_sha256": digest}}, f)
"""


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- quick-start -->\n```bash\n(.*?)^```$", readme, flags=re.S | re.M)
    assert m, "README.md has no <!-- quick-start --> block"
    return m.group(1)


def run_quick_start(
    tmp_path: Path, moto: MotoServer
) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    report = tmp_path / "rails.json"
    shims = {
        "secrets-agent": f'#!/bin/sh\nexec "{sys.executable}" -m secrets_agent "$@"\n',
        "docker-entrypoint.py": f'#!/bin/sh\nexec "{sys.executable}" "{ENTRYPOINT}" "$@"\n',
        "bundle": FAKE_RAILS.format(python=sys.executable, report=str(report)),
    }
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = base_env(moto.url)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    proc = subprocess.run(
        ["bash", "-c", quick_start()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, report


def test_the_quick_start_delivers_secret_key_base(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("ssm").put_parameter(
        Name="/myapp/prod/secret_key_base", Value=KEY, Type="SecureString"
    )
    proc, report = run_quick_start(tmp_path, moto)
    assert proc.returncode == 0, proc.stderr
    # `secrets-agent check`: one row, the variable, its source and name, required; no value.
    row = next(
        line.split() for line in proc.stdout.splitlines() if line.startswith("SECRET_KEY_BASE")
    )
    assert row[1:3] == ["ssm", "/myapp/prod/secret_key_base"] and row[-1] == "required"
    # The start: Rails (the fake bundle) got the command and the key.
    got = json.loads(report.read_text())
    assert got["argv"] == ["exec", "rails", "server", "-b", "0.0.0.0"]  # noqa: S104
    assert got["key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in proc.stdout + proc.stderr


def test_the_quick_start_fails_closed_without_the_key(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    """The prefix loads something, but not SECRET_KEY_BASE: check and the start both exit 66
    naming it, and Rails never runs."""
    boto_client("ssm").put_parameter(
        Name="/myapp/prod/smtp_password", Value="not-the-key", Type="SecureString"
    )
    proc, report = run_quick_start(tmp_path, moto)
    assert proc.returncode == 66, proc.stderr
    assert not report.exists()
    errors = [line for line in proc.stderr.splitlines() if "SECRET_KEY_BASE" in line]
    assert len(errors) == 2, proc.stderr  # one from check, one from the start
    assert "not-the-key" not in proc.stdout + proc.stderr
