"""Supervise mode as an init, case by case against the reference ``tini -s --``.

Every case runs the real entrypoint (``SECRETS_AGENT_WATCH_INTERVAL=5``, nothing to load: a
plain init, no AWS) and tini, each as an ordinary process and as PID 1 of a fresh PID namespace.
The child is ``tests/bin/signal_echo.py``, which reports what it receives.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.supervised import (
    ROOT,
    SIGNAL_ECHO,
    SUPERVISORS,
    UNSHARE,
    Supervised,
    children,
    launch,
    supervise_env,
    unshare_works,
    wait_until,
)

FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"]
STANDARD_SIGNALS_MASK = (1 << 31) - 1  # signals 1..31; 32 and 33 belong to glibc itself


@pytest.fixture(scope="module")
def can_unshare() -> bool:
    return unshare_works()


@pytest.fixture(params=["agent", "tini"])
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["plain", "pid1"])
def pid1(request: pytest.FixtureRequest, can_unshare: bool) -> bool:
    if request.param == "pid1" and not can_unshare:
        pytest.skip("unshare --pid is not permitted here")
    return request.param == "pid1"


@pytest.fixture
def run(impl: str, pid1: bool, tmp_path: Path) -> Iterator[object]:
    started: list[Supervised] = []

    def start(*echo_args: str) -> Supervised:
        out = tmp_path / f"echo-{len(started)}.log"
        command = [sys.executable, str(SIGNAL_ECHO), "--out", str(out), *echo_args]
        sup = launch(tmp_path, SUPERVISORS[impl](command), pid1=pid1, env=supervise_env(), out=out)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.close()


@pytest.mark.parametrize("signame", FORWARDED)
def test_each_forwarded_signal_reaches_the_command(run, signame: str) -> None:  # type: ignore[no-untyped-def]
    sup = run("--exit-on", "SIGTERM", "--code", "7")
    sup.wait_line("ready")
    sup.kill(getattr(signal, signame))
    sup.wait_line(f"signal {signame}")
    if signame != "SIGTERM":
        sup.kill(signal.SIGTERM)
        sup.wait_line("signal SIGTERM")
    assert sup.wait() == 7, sup.stderr()
    # Each signal arrives once: the supervisor neither drops nor duplicates it.
    assert sup.lines().count(f"signal {signame}") == 1


@pytest.mark.parametrize("code", [0, 1, 2, 42, 125, 255])
def test_exit_code_passes_through(run, code: int) -> None:  # type: ignore[no-untyped-def]
    sup = run("--exit", str(code))
    assert sup.wait() == code, sup.stderr()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL", "SIGUSR1", "SIGABRT"])
def test_signal_death_gives_128_plus_n(run, signame: str) -> None:  # type: ignore[no-untyped-def]
    sup = run("--kill-self", signame)
    assert sup.wait() == 128 + getattr(signal, signame), sup.stderr()


def test_orphaned_grandchild_is_reaped(run) -> None:  # type: ignore[no-untyped-def]
    sup = run("--orphan", "0.3")
    sup.wait_line("ready")
    orphan = sup.wait_line("orphan pid=")
    # The orphan was re-parented to the supervisor (subreaper, or PID 1 inside the namespace).
    expected_parent = 1 if sup.pid1 else sup.pid
    assert int(sup.field(orphan, "ppid")) == expected_parent
    sup.wait_line("orphan exit")
    supervisor = sup.pid

    def no_zombie() -> bool:
        return "Z" not in children(supervisor).values()

    wait_until(no_zombie, timeout=5, what=f"zombie children of {supervisor} to be reaped")
    # Only the command itself is left.
    assert len(children(supervisor)) == 1
    sup.kill(signal.SIGTERM)
    assert sup.wait() == 0


def test_command_starts_with_empty_mask_and_default_dispositions(impl: str, pid1: bool) -> None:
    # `cat` leaves its mask and dispositions as it found them (a Python child would ignore
    # SIGPIPE itself, and a /bin/sh wrapper would clear the mask by itself and hide the bug).
    argv = SUPERVISORS[impl](["cat", "/proc/self/status"])
    result = subprocess.run(
        [*UNSHARE, *argv] if pid1 else argv,
        env=supervise_env(),
        capture_output=True,
        timeout=30,
        cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr
    status = dict(
        line.split(":\t", 1) for line in result.stdout.decode().splitlines() if ":\t" in line
    )
    assert int(status["SigBlk"], 16) == 0
    assert int(status["SigIgn"], 16) & STANDARD_SIGNALS_MASK == 0


def test_signal_echo_reports_a_clean_start(run) -> None:  # type: ignore[no-untyped-def]
    sup = run()
    ready = sup.wait_line("ready")
    assert int(sup.field(ready, "sigblk"), 16) == 0
    # Python ignores SIGPIPE and SIGXFSZ itself; no forwarded signal may be ignored.
    ignored = int(sup.field(ready, "sigign"), 16)
    for name in FORWARDED:
        assert not ignored & (1 << (getattr(signal, name) - 1)), name
    # The command runs in its own process group, as under tini.
    assert sup.field(ready, "pgid") == sup.field(ready, "pid")
    sup.kill(signal.SIGTERM)
    assert sup.wait() == 0


@pytest.mark.parametrize(
    ("command", "code"),
    [(["no-such-command-xyz"], 127), (["/no/such/path"], 127), (["/tmp"], 126)],
)
def test_command_that_cannot_start(impl: str, command: list[str], code: int) -> None:
    result = subprocess.run(
        SUPERVISORS[impl](command),
        env=supervise_env(),
        capture_output=True,
        timeout=30,
        cwd=str(ROOT),
    )
    assert result.returncode == code
    if impl == "agent":
        errors = [
            line
            for line in result.stderr.decode().splitlines()
            if line.startswith("secrets-agent:")
        ]
        assert len(errors) == 1, result.stderr
        assert command[0] in errors[0]
