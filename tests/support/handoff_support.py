"""The test Rails app under the agent in supervise mode with SECRETS_AGENT_LISTEN: start it,
read the agent's JSON log events, wait for them."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.conftest import base_env
from tests.support.logs import events
from tests.support.moto_server import free_port
from tests.support.rails_app import CONFIG_RU, descendants, require_rails
from tests.support.supervised import SHORT_INTERVAL_ENTRYPOINT, wait_until

KEY = "ab12" * 32


def require_sd_notify() -> None:
    """puma 5 sends READY=1 only with the sd_notify gem (Debian's ruby-sd-notify)."""
    import pytest

    found = subprocess.run(
        ["ruby", "-e", 'require "sd_notify"'], capture_output=True, timeout=60, check=False
    )
    if found.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("the sd_notify gem is missing: .ci/run must install ruby-sd-notify")
        pytest.skip("Debian's ruby-sd-notify is not installed")


class ListeningRails:
    """``python short_interval_entrypoint.py [PREFIX...] puma -b tcp://127.0.0.1:PORT config.ru``
    with ``SECRETS_AGENT_LISTEN`` on the same address (unless ``listen`` says otherwise)."""

    def __init__(
        self,
        tmp_path: Path,
        moto_url: str,
        settings: Mapping[str, str],
        *,
        wrap: Sequence[str] = (),
        command: Sequence[str] | None = None,
        listen: bool = True,
        port: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        import sys

        self.port = port or free_port()
        env = base_env(moto_url)
        env.update(
            RAILS_ENV="production",
            RAILS_LOG_TO_STDOUT="",
            SECRETS_AGENT_WATCH_INTERVAL="1",
            SECRETS_AGENT_STOP_TIMEOUT="10",
            SECRETS_AGENT_LOG_FORMAT="json",
            SECRETS_AGENT_LOG_LEVEL="info",
        )
        if listen:
            env["SECRETS_AGENT_LISTEN"] = f"tcp://127.0.0.1:{self.port}"
        env.update(settings)
        if command is None:
            require_sd_notify()
        argv = command or [require_rails(), "-b", f"tcp://127.0.0.1:{self.port}", str(CONFIG_RU)]
        self.log_path = tmp_path / f"agent-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SHORT_INTERVAL_ENTRYPOINT), *wrap, *argv],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd or CONFIG_RU.parent),
        )

    def text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The agent's events so far, those whose name starts with ``name`` when given (puma's
        output shares the log, and the last line may be half written)."""
        return events(self.text(), name, prefix=True, tolerant=True)

    def wait_event(self, name: str, *, count: int = 1, timeout: float = 180) -> dict[str, Any]:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited ({self.proc.returncode}): {self.tail()}")
            return len(self.events(name)) >= count

        try:
            wait_until(seen, timeout=timeout, what=f"{count} x {name!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.tail()}\n{self.diagnose()}") from None
        return self.events(name)[count - 1]

    def diagnose(self) -> str:
        """The agent's processes and threads, and where each waits (for a timed-out wait)."""
        lines = []
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                tasks = sorted(os.listdir(f"/proc/{pid}/task"))
                waits = [Path(f"/proc/{pid}/task/{task}/wchan").read_text() for task in tasks]
            except OSError:
                continue
            lines.append(f"{pid} {cmdline[:160]!r} threads waiting in {waits}")
        return "\n".join(lines)

    def tail(self) -> str:
        return self.text()[-3000:]

    def children(self) -> list[int]:
        """The agent's app processes (puma), not its short-lived check processes."""
        out = []
        for pid in descendants(self.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"check_process" not in cmdline:
                out.append(pid)
        return out

    def fds(self) -> list[str]:
        out = []
        for entry in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                out.append(os.readlink(f"/proc/{self.proc.pid}/fd/{entry}"))
            except OSError:
                continue
        return sorted(out)

    def stop(self, timeout: float = 30) -> int | None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            for pid in descendants(self.proc.pid):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()


def gone(pid: int) -> bool:
    """No such process, not even a zombie."""
    return not os.path.exists(f"/proc/{pid}")


def wait_gone(pid: int, timeout: float = 30) -> None:
    wait_until(lambda: gone(pid), timeout=timeout, what=f"pid {pid} to be reaped")


def sleep_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
