"""A throwaway PostgreSQL server from Debian's postgresql package: its own cluster in a temporary
directory (initdb, pg_ctl), listening on 127.0.0.1 and a socket in that directory, run as
``nobody`` when the tests run as root (PostgreSQL refuses to run as root), removed afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.moto_server import free_port


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL missing: .ci/run must install postgresql and ruby-pg")
        pytest.skip("Debian's postgresql is not installed")
    return os.path.dirname(found[-1])


@dataclass
class Postgres:
    bindir: str
    directory: str
    port: int
    user: Any

    def psql(self, sql: str) -> str:
        done = subprocess.run(
            [
                f"{self.bindir}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.directory,
                "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-At", "-c", sql,
            ],
            capture_output=True, text=True, timeout=30, user=self.user, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout


@contextmanager
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    user = "nobody" if os.getuid() == 0 else None
    directory = tempfile.mkdtemp(prefix="secrets-agent-pg-", dir="/tmp")
    if user is not None:
        shutil.chown(directory, user=user)
    data = os.path.join(directory, "data")
    port = free_port()
    run: dict[str, Any] = {
        "capture_output": True, "text": True, "timeout": 120, "user": user, "check": False
    }
    try:
        done = subprocess.run(
            [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--no-sync"],
            **run,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off"
        done = subprocess.run(
            [f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{directory}/log", "-w",
             "start"],
            **run,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        try:
            yield Postgres(bindir, directory, port, user)
        finally:
            subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], **run)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
