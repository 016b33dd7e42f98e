"""Supervise mode as an init, case by case against the reference ``tini -s --``.

Every case runs the real entrypoint (``SECRETS_AGENT_WATCH_INTERVAL=60``, nothing to load: a
plain init, no AWS) and tini, each as an ordinary process and as PID 1 of a fresh PID namespace.
The child is ``tests/support/bin/signal_echo.py``, which reports what it receives.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import error_lines
from tests.support.supervised import (
    ROOT,
    SIGNAL_ECHO,
    SUPERVISORS,
    UNSHARE,
    Supervised,
    children,
    launch,
    proc_stat,
    supervise_env,
    unshare_works,
    wait_until,
)

FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"]
STANDARD_SIGNALS_MASK = (1 << 31) - 1  # signals 1..31; 32 and 33 belong to glibc itself


@pytest.fixture(scope="module")
def can_unshare() -> bool:
    return unshare_works()


@pytest.fixture(params=["secrets_agent", "tini"])
def impl(request: pytest.FixtureRequest) -> str:
    if request.param == "tini" and shutil.which("tini") is None:
        if os.environ.get("CI"):
            pytest.fail("tini missing: .ci/run must install Debian's tini")
        pytest.skip("the reference, Debian's tini, is not installed")
    return str(request.param)


@pytest.fixture(params=["plain", "pid1"])
def pid1(request: pytest.FixtureRequest, can_unshare: bool) -> bool:
    if request.param == "pid1" and not can_unshare:
        pytest.skip("unshare --pid is not permitted here")
    return bool(request.param == "pid1")


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
    assert sup.terminate() == 0


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
    assert sup.terminate() == 0


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
    if impl == "secrets_agent":
        errors = error_lines(result.stderr.decode())
        assert len(errors) == 1, result.stderr
        assert command[0] in errors[0]


# -- restarts and stops on changed secrets, with a watcher driven by a file ------------------

FILE_WATCH = ROOT / "tests" / "support" / "bin" / "supervise_file_watch.py"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[object]:
    started: list[Supervised] = []

    def start(
        *echo_args: str, on_change: str = "restart", stop_timeout: float = 5
    ) -> tuple[Supervised, Path]:
        out = tmp_path / "echo.log"
        watch = tmp_path / "watch.json"
        argv = [
            sys.executable,
            str(FILE_WATCH),
            str(watch),
            on_change,
            str(stop_timeout),
            "0.2",
            sys.executable,
            str(SIGNAL_ECHO),
            "--out",
            str(out),
            "--env",
            "TOKEN",
            *echo_args,
        ]
        sup = launch(tmp_path, argv, pid1=False, env={**supervise_env(), "TOKEN": "v1"}, out=out)
        started.append(sup)
        sup.wait_line("ready")
        return sup, watch

    yield start
    for sup in started:
        sup.close()


def test_change_restarts_the_command_with_the_new_environment(watched) -> None:  # type: ignore[no-untyped-def]
    sup, watch = watched("--code", "7")
    assert sup.wait_line("env TOKEN") == "env TOKEN=v1"
    watch.write_text(json.dumps({"TOKEN": "v2"}))
    sup.wait_line("ready", count=2)
    assert sup.wait_line("env TOKEN", count=2) == "env TOKEN=v2"
    lines = sup.lines()
    # The old command was asked to stop with SIGTERM before the new one started.
    assert (
        lines.index("signal SIGTERM") < [i for i, x in enumerate(lines) if x.startswith("ready")][1]
    )
    # The stopped command's exit status (7) did not end the agent.
    assert sup.proc.poll() is None
    wait_until(lambda: sup.events("command restarted"), timeout=5, what="restart log")
    restarted = sup.events("command restarted")[0]
    assert restarted["changed"] == ["TOKEN"]
    assert "v2" not in sup.stderr() and "v1" not in sup.stderr()
    assert sup.terminate() == 7


def test_same_values_do_not_restart(watched) -> None:  # type: ignore[no-untyped-def]
    sup, watch = watched()
    watch.write_text(json.dumps({"TOKEN": "v1"}))
    wait_until(
        lambda: any(e.get("same_values") for e in sup.events("secrets checked")),
        timeout=5,
        what="a check that finds the same values",
    )
    assert len([x for x in sup.lines() if x.startswith("ready")]) == 1
    assert not sup.events("command restarted")
    assert sup.terminate() == 0


def test_failed_check_keeps_the_command_and_retries(watched) -> None:  # type: ignore[no-untyped-def]
    sup, watch = watched()
    watch.write_text(json.dumps({"broken": True, "TOKEN": "v2"}))
    wait_until(
        lambda: len(sup.events("secrets check failed; command kept")) >= 2,
        timeout=5,
        what="two failed checks",
    )
    failure = sup.events("secrets check failed; command kept")[0]
    assert "same name" in str(failure["error"])
    assert len([x for x in sup.lines() if x.startswith("ready")]) == 1
    assert "signal SIGTERM" not in sup.lines()
    watch.write_text(json.dumps({"TOKEN": "v3"}))
    assert sup.wait_line("env TOKEN", count=2) == "env TOKEN=v3"
    assert sup.terminate() == 0


def test_stop_timeout_escalates_to_sigkill(watched) -> None:  # type: ignore[no-untyped-def]
    # The command ignores SIGTERM and has a descendant in its process group (as puma's
    # workers are): after the stop timeout both are killed, and the new command starts.
    sup, watch = watched("--ignore", "SIGTERM", "--orphan", "60", stop_timeout=0.5)
    worker = int(sup.field(sup.wait_line("orphan pid="), "pid"))
    watch.write_text(json.dumps({"TOKEN": "v2"}))
    sup.wait_line("signal SIGTERM")
    assert sup.wait_line("env TOKEN", count=2, timeout=10) == "env TOKEN=v2"
    assert sup.events("stop timeout expired")
    wait_until(lambda: proc_stat(worker) is None, timeout=5, what="the old descendant to die")
    # Clean up the new command and its own descendant the same way.
    os.killpg(int(sup.field(sup.wait_line("ready", count=2), "pid")), signal.SIGKILL)
    assert sup.wait() == 128 + signal.SIGKILL


def test_on_change_exit_stops_the_command_and_exits_zero(watched) -> None:  # type: ignore[no-untyped-def]
    sup, watch = watched("--code", "7", on_change="exit")
    watch.write_text(json.dumps({"TOKEN": "v2"}))
    assert sup.wait() == 0
    assert "signal SIGTERM" in sup.lines()
    assert len([x for x in sup.lines() if x.startswith("ready")]) == 1


def test_stop_signal_during_a_restart_stops_everything(watched) -> None:  # type: ignore[no-untyped-def]
    sup, watch = watched("--code", "7", "--linger", "1.0")
    watch.write_text(json.dumps({"TOKEN": "v2"}))
    sup.wait_line("signal SIGTERM")  # the restart's stop has begun; the command lingers 1 s
    assert sup.terminate() == 7
    assert len([x for x in sup.lines() if x.startswith("ready")]) == 1


def test_signals_are_forwarded_while_a_check_is_slow(watched) -> None:  # type: ignore[no-untyped-def]
    # Each check sleeps 60 s: a signal or a stop that waited for it would take about that
    # long, so generous bounds tell the two apart on a loaded machine.
    sup, watch = watched()
    watch.write_text(json.dumps({"sleep": 60, "broken": True}))
    time.sleep(0.6)  # the check (every 0.2 s) is now sleeping in its thread
    sent = time.monotonic()
    sup.kill(signal.SIGUSR1)
    sup.wait_line("signal SIGUSR1", timeout=20)
    assert time.monotonic() - sent < 20, "a forwarded signal waited for the check"
    sup.kill(signal.SIGTERM)
    assert sup.wait(timeout=20) == 0


# -- a terminal: `docker run -it IMAGE rails console` ------------------------------------------


def run_on_terminal(argv: list[str], tmp_path: Path, keys: bytes = b"") -> tuple[int, str]:
    """Run ``argv`` as the session leader of a new pseudo-terminal; type ``keys`` once the
    command reported ``ready``, and send SIGTERM to the supervisor once the command reported
    what the keys did; return the exit code and the terminal output."""
    import pty

    pid, master = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        try:
            os.chdir(ROOT)
            os.execve(argv[0], argv, supervise_env())
        finally:
            os._exit(127)
    output = b""
    typed = False
    ready = tmp_path / "echo.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        readable, _, _ = select.select([master], [], [], 0.05)
        if readable:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every process of the terminal is gone
                break
            if not chunk:
                break
            output += chunk
        if keys and not typed and ready.exists() and "ready" in ready.read_text():
            os.write(master, keys)
            typed = True
        elif typed and "signal SIGINT" in ready.read_text():
            time.sleep(0.5)  # room for a duplicate to arrive
            os.kill(pid, signal.SIGTERM)
            keys = b""
    status = _wait_or_kill(pid, ready, grace=5)
    os.close(master)
    assert status is not None, f"the supervisor did not exit: {output.decode(errors='replace')}"
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def _wait_or_kill(pid: int, echo_log: Path, *, grace: float) -> int | None:
    """The wait status of ``pid``; or, when it has not exited within ``grace`` seconds, kill it
    and the command it started (a failure, not a hung test run) and return None."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    lines = echo_log.read_text().splitlines() if echo_log.exists() else []
    for line in lines:
        if line.startswith("ready pid="):
            try:
                os.killpg(int(line.split()[1].split("=")[1]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return None


def test_command_gets_the_terminal_foreground(impl: str, tmp_path: Path) -> None:
    probe = "import os; print('foreground', os.tcgetpgrp(0) == os.getpgrp(), flush=True)"
    argv = SUPERVISORS[impl]([sys.executable, "-c", probe])
    argv[0] = shutil.which(argv[0]) or argv[0]
    code, output = run_on_terminal(argv, tmp_path)
    assert code == 0, output
    assert "foreground True" in output


def test_ctrl_c_reaches_the_command(impl: str, tmp_path: Path) -> None:
    out = tmp_path / "echo.log"
    echo = [sys.executable, str(SIGNAL_ECHO), "--out", str(out), "--exit-on", "SIGTERM"]
    echo += ["--code", "5"]
    argv = SUPERVISORS[impl](echo)
    argv[0] = shutil.which(argv[0]) or argv[0]
    code, output = run_on_terminal(argv, tmp_path, keys=b"\x03")
    assert code == 5, output
    # The terminal sends SIGINT to its foreground group, the command's. (A duplicate from a
    # supervisor sharing that group could not be seen reliably: pending signals coalesce.)
    assert out.read_text().splitlines().count("signal SIGINT") == 1


def test_exits_with_the_command_while_orphans_live_on(run) -> None:  # type: ignore[no-untyped-def]
    sup = run("--orphan", "30", "--exit", "4")
    orphan = sup.wait_line("orphan pid=")
    try:
        assert sup.wait(timeout=10) == 4, sup.stderr()
    finally:
        if not sup.pid1:  # as PID 1, the kernel killed it with the namespace
            os.kill(int(sup.field(orphan, "pid")), signal.SIGKILL)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1", "SIGHUP"])
def test_signal_from_inside_reaches_the_command(run, signame: str) -> None:  # type: ignore[no-untyped-def]
    # As PID 1, a signal sent from inside the namespace (``docker exec CONTAINER kill 1``)
    # reaches the supervisor only if it waits for it (blocked, or a handler); the kernel
    # drops one whose disposition is the default.
    sup = run("--signal-parent", signame, "--exit-on", signame, "--code", "9")
    sup.wait_line(f"signal {signame}")
    assert sup.wait() == 9, sup.stderr()
