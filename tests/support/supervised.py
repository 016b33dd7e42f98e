"""Helpers to run a command under the agent's supervise mode or under tini, as a plain process
or as PID 1 of a fresh PID namespace, and to watch what the command reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ENTRYPOINT, base_env
from tests.support.logs import events

ROOT = Path(__file__).resolve().parents[2]
SIGNAL_ECHO = ROOT / "tests" / "support" / "bin" / "signal_echo.py"
# The entrypoint with the 30 s floor of SECRETS_AGENT_WATCH_INTERVAL lowered, for rotations.
SHORT_INTERVAL_ENTRYPOINT = ROOT / "tests" / "support" / "bin" / "short_interval_entrypoint.py"
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def children(pid: int) -> dict[int, str]:
    """Children of ``pid`` (host pids) and their states, from /proc."""
    out: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[1] == pid:
                out[int(entry)] = stat[0]
    return out


def agent_argv(command: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), *command]


def rotating_agent_argv(command: Sequence[str]) -> list[str]:
    """The agent, allowed a change check every second (tests only)."""
    return [sys.executable, str(SHORT_INTERVAL_ENTRYPOINT), *command]


def tini_argv(command: Sequence[str]) -> list[str]:
    return ["tini", "-s", "--", *command]


SUPERVISORS: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "secrets_agent": agent_argv,
    "tini": tini_argv,
}


def supervise_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent in supervise mode with nothing to load: a plain init (no AWS at all)."""
    env = base_env(None)
    env["SECRETS_AGENT_WATCH_INTERVAL"] = "60"
    env["SECRETS_AGENT_LOG_LEVEL"] = "debug"
    env.update(extra or {})
    return env


@dataclass
class Supervised:
    """A running supervisor (the agent or tini), maybe inside ``unshare``."""

    proc: subprocess.Popen[bytes]
    out: Path
    pid1: bool
    stderr_path: Path
    _pid: int | None = field(default=None)

    @property
    def pid(self) -> int:
        """The supervisor's host pid (the child of ``unshare`` when it is PID 1)."""
        if self._pid is None:
            if not self.pid1:
                self._pid = self.proc.pid
            else:
                found: list[int] = []

                def look() -> bool:
                    found[:] = list(children(self.proc.pid))
                    return bool(found)

                wait_until(look, timeout=10, what="the namespace's PID 1")
                self._pid = found[0]
        return self._pid

    def lines(self) -> list[str]:
        try:
            return self.out.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def wait_line(self, prefix: str, *, timeout: float = 20, count: int = 1) -> str:
        found: list[str] = []

        def look() -> bool:
            found[:] = [line for line in self.lines() if line.startswith(prefix)]
            return len(found) >= count

        wait_until(look, timeout=timeout, what=f"{prefix!r} in {self.lines()}")
        return found[count - 1]

    def field(self, line: str, key: str) -> str:
        for word in line.split():
            if word.startswith(key + "="):
                return word.split("=", 1)[1]
        raise KeyError(key)

    def kill(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout=timeout)

    def terminate(self) -> int:
        """SIGTERM to the supervisor; its exit status."""
        self.kill(signal.SIGTERM)
        return self.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The agent's JSON log events so far (those named ``name`` when given)."""
        return events(self.stderr(), name)

    def close(self) -> None:
        """Stop the supervisor, and make sure no command it started outlives the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.pid1:
            return  # the namespace died with its PID 1, and everything in it
        for line in self.lines():
            if line.startswith("ready pid="):
                pid = int(self.field(line, "pid"))
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"signal_echo" in cmdline:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


def launch(
    tmp_path: Path,
    argv: Sequence[str],
    *,
    pid1: bool,
    env: Mapping[str, str],
    out: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Supervised:
    full = [*UNSHARE, *argv] if pid1 else list(argv)
    out = out or tmp_path / f"echo-{os.urandom(4).hex()}.log"
    err = tmp_path / f"stderr-{os.urandom(4).hex()}.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            full,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=fh,
            cwd=str(ROOT),
            preexec_fn=preexec_fn,
        )
    return Supervised(proc, out, pid1, err)


def unshare_works() -> bool:
    try:
        result = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class Fleet:
    """Agents supervising the signal-echo command (reporting ``report`` variables), each
    allowed a check every second through the test wrapper; all closed by ``close``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Supervised] = []

    def start(
        self, env: Mapping[str, str], *report: str, wait: bool = True, timeout: float = 30
    ) -> Supervised:
        out = self.tmp_path / f"echo-{len(self.started)}.log"
        command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out), "--code", "3"]
        for name in report:
            command += ["--env", name]
        sup = launch(self.tmp_path, rotating_agent_argv(command), pid1=False, env=env, out=out)
        self.started.append(sup)
        if wait:
            try:
                sup.wait_line("ready", timeout=timeout)
            except AssertionError:
                raise AssertionError(sup.stderr()) from None
        return sup

    def close(self) -> None:
        for sup in self.started:
            sup.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def checking_every_second(env: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """``env`` against ``endpoint``, for an agent of a ``Fleet`` (the short-interval wrapper):
    a check every second, each logged (debug)."""
    return dict(env) | {
        "AWS_ENDPOINT_URL": endpoint,
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
    }
