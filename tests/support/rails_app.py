"""Start the minimal Rails app of tests/support/rails (puma on its config.ru) through a given argv
prefix
and query it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.moto_server import free_port

CONFIG_RU = Path(__file__).resolve().parent / "rails" / "config.ru"


def require_rails() -> str:
    puma = shutil.which("puma")
    if puma is None or shutil.which("ruby") is None:
        if os.environ.get("CI"):
            pytest.fail("puma/ruby missing: .ci/run must install ruby, ruby-rails and puma")
        pytest.skip("Debian's ruby-rails and puma are not installed")
    return puma


class RailsApp:
    """``RailsApp(prefix_argv, env)`` runs ``prefix_argv + [puma, -b, ..., config.ru]``."""

    def __init__(
        self,
        prefix: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        app_dir: Path | None = None,
    ) -> None:
        """``app_dir``: a copy of tests/support/rails to run instead (its working directory too)."""
        config_ru = (app_dir / "config.ru") if app_dir is not None else CONFIG_RU
        self.port = free_port()
        puma = require_rails()
        env = dict(env)
        env.setdefault("RAILS_ENV", "production")
        env.setdefault("RAILS_LOG_TO_STDOUT", "")
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [*prefix, puma, "-b", f"tcp://127.0.0.1:{self.port}", str(config_ru)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(config_ru.parent),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (status, body[:500], self.log())
        return json.loads(body)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app exited with {self.proc.returncode}: {self.log()}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"app did not listen within {timeout}s: {self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                # Supervised, puma is the agent's child in its own process group: kill it too,
                # or a failed test leaves it running.
                stragglers = descendants(self.proc.pid)
                self.proc.kill()
                self.proc.wait()
                for pid in stragglers:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self._log.close()
        return code


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children before grandchildren)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found
