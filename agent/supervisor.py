"""Supervise mode: the agent stays the command's parent and does what an init does.

The loop is tini's: the forwarded signals and ``SIGCHLD`` are blocked and read synchronously
with ``sigtimedwait``; each one is forwarded to the command, every zombie is reaped, and the
agent returns the command's status (``128+N`` when it died of signal ``N``) as soon as it exits.
Between signals, a watcher is asked every interval (with jitter) whether a secret changed; the
check runs in a worker thread so that a slow AWS call never delays a signal. On a change the
command is stopped (``SIGTERM``, then ``SIGKILL`` to its process group after the stop timeout)
and started again with the new environment, or, with ``on_change="exit"``, the agent returns 0.

The command is started with ``posix_spawn``: an empty signal mask, default dispositions for
every signal, and its own process group (given the terminal's foreground when the agent had
it, as tini does). A command that cannot be started raises ``CommandNotFoundError`` (127) or
``CommandNotExecutableError`` (126), on the first start as on a restart.

Logs carry the pid, ``argv[0]``, signal names, exit statuses and changed *names*: never the
environment or a value.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from agent.errors import (
    AgentError,
    CommandNotExecutableError,
    CommandNotFoundError,
    UsageError,
)
from agent.logs import Level, Logger

FORWARDED: tuple[signal.Signals, ...] = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
WAITED = frozenset({*FORWARDED, signal.SIGCHLD})
# Every signal whose disposition can be set: the command starts with all of them at SIG_DFL
# (Python itself ignores SIGPIPE and SIGXFSZ, and ignored dispositions survive exec).
DEFAULTED = frozenset(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
JITTER = 0.15
PR_SET_CHILD_SUBREAPER = 36
_SAFETY_WAKE = 5.0


class Watcher(Protocol):
    def poll(self) -> Mapping[str, str] | None:
        """Check for changed secrets.

        Return the complete new environment for the command when something changed, None
        when nothing changed. Raise ``AgentError`` when the check or the re-resolution fails:
        the supervisor logs it, keeps the running command and tries again next interval.
        """
        ...


@runtime_checkable
class DescribesChanges(Protocol):
    """Optional: a watcher that says what its last ``poll`` found, as names and versions only
    (for example ``"SECRET_KEY_BASE ssm:/app/secret_key_base 3->4"``)."""

    last_changes: Sequence[str]


def find_command(name: str, path: str | None) -> str:
    """Resolve ``name`` as ``execvp`` would: 127 when nothing is found, 126 when only
    something that cannot be executed is."""
    if not name:
        raise CommandNotFoundError("empty command name", hint="give the command to run")
    if "/" in name:
        candidates = [name]
    else:
        dirs = (path if path is not None else os.defpath).split(os.pathsep)
        candidates = [os.path.join(d or ".", name) for d in dirs]
    unusable = ""
    for candidate in candidates:
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            return candidate
        unusable = unusable or candidate
    if unusable:
        raise CommandNotExecutableError(
            f"{unusable}: not an executable file", hint="check the command's permissions"
        )
    where = "" if "/" in name else " in PATH"
    raise CommandNotFoundError(f"{name}: not found{where}", hint="check the command and PATH")


def set_subreaper() -> bool:
    """Make orphaned descendants ours to reap even when we are not PID 1 (like ``tini -s``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Check:
    """One ``watcher.poll()`` in a worker thread; wakes the supervising thread when done."""

    def __init__(self, watcher: Watcher, wake_thread: int) -> None:
        self.watcher = watcher
        self.wake_thread = wake_thread
        self.done = threading.Event()
        self.result: Mapping[str, str] | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        threading.Thread(target=self._run, name="secrets-check", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self.watcher.poll()
        except AgentError as exc:
            self.error = exc.line().removeprefix("secrets-agent: ")
        except Exception as exc:  # noqa: BLE001 - a bug in a check must not end the command
            self.error = f"unexpected {type(exc).__name__} during the check"
        finally:
            self.done.set()
            try:
                signal.pthread_kill(self.wake_thread, signal.SIGCHLD)
            except (OSError, ValueError):
                pass


class Supervisor:
    """The state of one supervise run. Use :func:`supervise`."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        interval: float,
        on_change: Literal["restart", "exit"],
        stop_timeout: float,
        watcher: Watcher | None,
        log: Logger,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.interval = interval
        self.on_change = on_change
        self.stop_timeout = stop_timeout
        self.watcher = watcher
        self.log = log
        self.rng = random.Random()  # noqa: S311 - jitter for poll times, not cryptography
        self.thread = threading.get_ident()
        self.child: int | None = None
        self.stopping: Literal["restart", "exit"] | None = None
        self.kill_at: float | None = None
        self.shutdown = False
        self.pending_env: dict[str, str] | None = None
        self.check: _Check | None = None
        self.next_check = 0.0
        self.owns_tty = False

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
        try:
            self.log.info(
                "supervising",
                pid=os.getpid(),
                subreaper=set_subreaper(),
                interval=self.interval,
                on_change=self.on_change,
                stop_timeout=self.stop_timeout,
                watching=self.watcher is not None,
            )
            self.owns_tty = _owns_terminal()
            self.start(self.env)
            while True:
                code = self.step()
                if code is not None:
                    return code
        finally:
            while signal.sigtimedwait(WAITED, 0) is not None:
                pass  # nobody is left to forward them to
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def step(self) -> int | None:
        info = signal.sigtimedwait(WAITED, self.timeout())
        while info is not None:
            self.on_signal(signal.Signals(info.si_signo))
            info = signal.sigtimedwait(WAITED, 0)
        status = self.reap()
        if status is not None:
            return self.on_exit(status)
        self.on_timers()
        return None

    def timeout(self) -> float:
        now = time.monotonic()
        wake = now + _SAFETY_WAKE
        if self.kill_at is not None:
            wake = min(wake, self.kill_at)
        if self.watcher is not None and self.check is None and self.stopping is None:
            wake = min(wake, self.next_check)
        return max(0.0, wake - now)

    # -- the command ------------------------------------------------------------------------
    def start(self, env: Mapping[str, str]) -> None:
        path = find_command(self.argv[0], env.get("PATH", os.environ.get("PATH")))
        try:
            pid = os.posix_spawn(
                path,
                self.argv,
                env,
                setpgroup=0,
                setsigmask=set(),
                setsigdef=DEFAULTED,
            )
        except FileNotFoundError as exc:
            raise CommandNotFoundError(
                f"{self.argv[0]}: {exc.strerror}", hint="check the command and its interpreter"
            ) from exc
        except OSError as exc:
            raise CommandNotExecutableError(
                f"{self.argv[0]}: {exc.strerror}", hint="check the command's permissions"
            ) from exc
        self.child = pid
        self.env = dict(env)
        if self.owns_tty:
            _give_terminal(pid)
        self.next_check = time.monotonic() + self.jittered()
        self.log.info("command started", pid=pid, command=self.argv[0])

    def jittered(self) -> float:
        return self.interval * self.rng.uniform(1 - JITTER, 1 + JITTER)

    def on_signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGCHLD:
            return
        if sig in STOP_SIGNALS:
            self.shutdown = True
        if self.child is not None:
            try:
                os.kill(self.child, sig)
            except ProcessLookupError:
                return
            level: Level = "debug" if sig == signal.SIGWINCH else "info"
            self.log.log(level, "signal forwarded", signal=sig.name, pid=self.child)

    def reap(self) -> int | None:
        """Reap every zombie; the main command's exit code when it was among them."""
        code: int | None = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.child:
                self.child = None
                code = exit_code(status)
            else:
                self.log.debug("orphan reaped", pid=pid, exit_code=exit_code(status))
        return code

    def on_exit(self, code: int) -> int | None:
        stopping, self.stopping, self.kill_at = self.stopping, None, None
        if stopping == "restart" and not self.shutdown and self.pending_env is not None:
            env, self.pending_env = self.pending_env, None
            changed = _changed_names(self.env, env)
            self.start(env)
            self.log.info("command restarted", pid=self.child, changed=changed, old_status=code)
            return None
        if stopping == "exit" and not self.shutdown:
            self.log.info("command stopped for changed secrets", status=code, exit_code=0)
            return 0
        self.log.info("command exited", exit_code=code)
        return code

    def stop(self, reason: Literal["restart", "exit"]) -> None:
        if self.child is None:
            return
        self.stopping = reason
        self.kill_at = time.monotonic() + self.stop_timeout
        self.log.info("stopping command", pid=self.child, reason=reason, signal="SIGTERM")
        try:
            os.kill(self.child, signal.SIGTERM)
        except ProcessLookupError:
            pass

    # -- timers: the stop timeout and the checks ----------------------------------------------
    def on_timers(self) -> None:
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at and self.child is not None:
            self.kill_at = None
            self.log.warning(
                "stop timeout expired",
                pid=self.child,
                stop_timeout=self.stop_timeout,
                signal="SIGKILL",
            )
            try:
                os.killpg(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.check is not None and self.check.done.is_set():
            check, self.check = self.check, None
            self.next_check = now + self.jittered()
            self.on_check(check, now)
        if (
            self.watcher is not None
            and self.check is None
            and self.stopping is None
            and not self.shutdown
            and now >= self.next_check
        ):
            self.check = _Check(self.watcher, self.thread)

    def on_check(self, check: _Check, now: float) -> None:
        took = round(now - check.started, 3)
        if check.error is not None:
            self.log.warning("secrets check failed; command kept", error=check.error, took=took)
            return
        if check.result is None or self.shutdown or self.stopping is not None:
            self.log.debug("secrets checked", changed=False, took=took)
            return
        new_env = dict(check.result)
        changed = _changed_names(self.env, new_env)
        if not changed:
            self.log.debug("secrets checked", changed=False, took=took, same_values=True)
            return
        versions: list[str] = []
        if isinstance(self.watcher, DescribesChanges):
            versions = list(self.watcher.last_changes)
        self.log.info("secrets changed", names=changed, changes=versions, took=took)
        self.pending_env = new_env
        self.stop(self.on_change)


def _changed_names(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _owns_terminal() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _give_terminal(pid: int) -> None:
    """Make the command's process group the terminal's foreground, as tini does, so that
    ``docker run -it ... rails console`` reads the terminal and gets ^C itself."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # we may be in the background by now
    try:
        os.tcsetpgrp(0, pid)
    except OSError:
        pass


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    interval: float,
    on_change: Literal["restart", "exit"],
    stop_timeout: float,
    watcher: Watcher | None,
    log: Logger,
) -> int:
    """Run ``argv`` with ``env`` as its supervisor; return the exit code for the agent.

    Raises ``CommandNotFoundError`` / ``CommandNotExecutableError`` when the command cannot
    be started. Must be called from the main thread of a single-threaded process.
    """
    if not argv:
        raise UsageError("no command given", hint="give the command to run")
    return Supervisor(
        argv,
        env,
        interval=interval,
        on_change=on_change,
        stop_timeout=stop_timeout,
        watcher=watcher,
        log=log,
    ).run()
