"""Supervise mode: the agent stays the command's parent and does what an init does.

The loop is tini's: the forwarded signals and ``SIGCHLD`` are blocked and read synchronously
with ``sigtimedwait``; each one is forwarded to the command, every zombie is reaped, and the
agent returns the command's status (``128+N`` when it died of signal ``N``) as soon as it exits.
Between signals, a watcher is asked every interval (with jitter) whether a secret changed; the
check runs in a worker thread so that a slow AWS call never delays a signal (in restart and exit
modes that thread only waits for a short-lived check process, ``secrets_agent.supervise.isolated``,
whose status
the reaper hands back through the ``on_reaped`` hook: the AWS SDK never loads here). On a change the
command is stopped (``SIGTERM``, then ``SIGKILL`` to its process group after the stop timeout)
and started again with the new environment, or, with ``on_change="exit"``, the agent returns 0.

A new environment is refused, and the running command kept, when it lacks a variable the
command has (a parameter or secret deleted, renamed or scheduled for deletion, a JSON key
renamed: a partial environment), or when ``execve`` could not take it (too large). Refused is
a failed check: a warning names what, and the next interval checks again. Removing a secret on
purpose takes a new start (a deploy).

Choices, where tini is the model: signals go to the command only, not its group; the command
runs in its own process group (``secrets_agent.process.spawn``). An outside ``SIGTERM``/``SIGINT``
is only
forwarded: the orchestrator owns that grace period (ECS ``stopTimeout``), so the agent does not
SIGKILL on its own then. One arriving while a restart is under way cancels the restart, and the
agent then exits with the command's status. The status of a command stopped for a restart is
not the agent's. A command that cannot be started raises ``CommandNotFoundError`` (127) or
``CommandNotExecutableError`` (126), on the first start as on a restart.

Logs carry the pid, ``argv[0]``, signal names, exit statuses and changed *names*: never the
environment or a value.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from secrets_agent.core.errors import UsageError
from secrets_agent.output.logs import Level, Logger
from secrets_agent.process.spawn import (
    exit_code,
    give_terminal,
    owns_terminal,
    set_subreaper,
    spawn_command,
)
from secrets_agent.supervise.checks import Change as Change
from secrets_agent.supervise.checks import OnReaped as OnReaped
from secrets_agent.supervise.checks import Watcher as Watcher
from secrets_agent.supervise.checks import _Check as _Check
from secrets_agent.supervise.checks import changed_names as _changed_names
from secrets_agent.supervise.checks import metrics as _metrics
from secrets_agent.supervise.checks import refusal
from secrets_agent.supervise.stagger import jittered

if TYPE_CHECKING:
    from secrets_agent.output.metrics import Emf

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
_SAFETY_WAKE = 5.0


class Supervisor:
    """The state of one supervise run: ``Supervisor(...).run()`` runs ``argv`` with ``env`` as
    its supervisor and returns the exit code for the agent.

    ``run`` raises ``CommandNotFoundError`` / ``CommandNotExecutableError`` when the command
    cannot be started. It must be called from the main thread, in a process whose other threads
    (the queued stderr's writer) block every signal. ``on_reaped`` takes the statuses of the
    processes a watcher starts (``secrets_agent.supervise.isolated``), and ``on_stop`` ends them
    when the supervisor exits. ``stretch`` and ``spread_first``: the checks' pacing (redeploy
    mode: every ``stretch`` intervals, the first at a random point of that span).
    """

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
        prepare: Callable[[Mapping[str, str]], Mapping[str, str]] | None = None,
        emf: Emf | None = None,
        restart_delay: float = 0.0,
        on_reaped: OnReaped | None = None,
        on_stop: Callable[[], None] | None = None,
        stretch: int = 1,
        spread_first: bool = False,
    ) -> None:
        if not argv:
            raise UsageError("no command given", hint="give the command to run")
        self.emf = emf
        self.on_reaped = on_reaped
        self.on_stop = on_stop
        self.stretch = stretch
        self.spread_first = spread_first
        self.argv = list(argv)
        self.prepare = prepare
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
        # SECRETS_AGENT_RESTART_SPREAD: a restart waits this long after its change is found.
        self.restart_delay = restart_delay
        self.restart_due: float | None = None

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
                # Any other thread that does not block the forwarded signals could take one.
                threads=threading.active_count(),
                # Restart and exit modes check in a process of their own
                # (secrets_agent.supervise.isolated).
                aws_sdk_loaded="botocore" in sys.modules,
            )
            self.owns_tty = owns_terminal()
            self.start(self.env)
            while True:
                code = self.step()
                if code is not None:
                    return code
        finally:
            if self.on_stop is not None:
                self.on_stop()
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
        if self.restart_due is not None:
            wake = min(wake, self.restart_due)
        elif self.watcher is not None and self.check is None and self.stopping is None:
            wake = min(wake, self.next_check)
        return max(0.0, wake - now)

    # -- the command ------------------------------------------------------------------------
    def start(self, env: Mapping[str, str]) -> None:
        # ``prepare`` (secret files) writes what it takes out of ``env``: at the first start and
        # after a rotation, once the old command has stopped. ``self.env`` keeps every
        # variable, so that a change to one written to a file is a change too.
        command_env = self.prepare(env) if self.prepare is not None else env
        pid = self.spawn(command_env)
        self.child = pid
        self.env = dict(env)
        if self.owns_tty:
            give_terminal(pid)
        self.next_check = time.monotonic() + self.jittered()
        self.log.info("command started", pid=pid, command=self.argv[0])

    def spawn(self, env: Mapping[str, str]) -> int:
        """Start the command; a hook for ``secrets_agent.supervise.handoff`` (which passes
        sockets)."""
        return spawn_command(self.argv, env)

    def reaped(self, pid: int, status: int) -> bool:
        """A hook for ``secrets_agent.supervise.handoff``: True when ``pid`` was one of its own
        processes."""
        return False

    def jittered(self) -> float:
        span = self.interval * self.stretch
        if self.spread_first:
            # Tasks of one deployment start together: a random phase spreads their checks.
            self.spread_first = False
            return span * self.rng.uniform(0.0, 1.0)
        return jittered(span, self.rng)

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
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.on_reaped is not None and self.on_reaped(pid, status, usage.ru_maxrss):
                continue  # a check process: its thread takes the status
            if self.reaped(pid, status):
                continue
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
            self.event(
                "info",
                "command restarted",
                {"Restarts": 1},
                pid=self.child,
                changed=changed,
                old_status=code,
            )
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
            # Its process group (puma's workers too), and itself in case it left that group.
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.restart_due is not None and now >= self.restart_due:
            self.restart_due = None
            if not self.shutdown and self.stopping is None:
                self.stop("restart")
        if self.check is not None and self.check.done.is_set():
            check, self.check = self.check, None
            self.next_check = now + self.jittered()
            self.on_check(check, now)
        if (
            self.watcher is not None
            and self.check is None
            and self.stopping is None
            and self.restart_due is None
            and not self.shutdown
            and now >= self.next_check
        ):
            self.check = _Check(self.watcher, self.thread)

    def event(
        self, level: Level, event: str, metrics: Mapping[str, float], **fields: object
    ) -> None:
        """Log a summary event; with EMF on, with its metrics and whatever the log level."""
        if self.emf is None:
            self.log.log(level, event, **fields)
        else:
            shown: Level = "info" if level == "debug" else level
            self.emf.write(self.log, shown, event, metrics, **fields)

    def on_check(self, check: _Check, now: float) -> None:
        took = round(now - check.started, 3)
        change = check.result
        if change is not None and change.stretch is not None:
            self.stretch = change.stretch
        if check.error is not None:
            self.check_failed(took, error=check.error)
        elif change is None or change.env is None or self.shutdown or self.stopping is not None:
            self.checked(took)
        else:
            self.on_change_found(check.watcher, change, dict(change.env), took)

    def checked(self, took: float, **fields: object) -> None:
        """Nothing to act on."""
        self.event("debug", "secrets checked", _metrics(), changed=False, took=took, **fields)

    def check_failed(self, took: float, **fields: object) -> None:
        """A failed or refused check: the running command is kept; the next interval checks."""
        self.event(
            "warning",
            "secrets check failed; command kept",
            _metrics(FailedChecks=1),
            took=took,
            **fields,
        )

    def on_change_found(
        self, watcher: Watcher, change: Change, new_env: dict[str, str], took: float
    ) -> None:
        changed = _changed_names(self.env, new_env)
        if not changed:
            watcher.commit()
            self.checked(took, same_values=True)
            return
        refused = self.refusal(new_env)
        if refused is not None:
            # Not committed: the next interval checks again, and a restored secret then looks
            # like no change at all.
            self.check_failed(took, **refused, names=changed, changes=list(change.changes))
            return
        watcher.commit()
        self.event(
            "info",
            "secrets changed",
            _metrics(ChangesSeen=1),
            names=changed,
            changes=list(change.changes),
            took=took,
        )
        self.pending_env = new_env
        if self.on_change == "restart" and self.restart_delay > 0:
            # Checks wait until the restart; a later change is found after it. Counted from
            # now, after the event: never less than the delay after "secrets changed".
            self.restart_due = time.monotonic() + self.restart_delay
            self.log.info("restart scheduled", pid=self.child, in_seconds=self.restart_delay)
            return
        self.stop(self.on_change)

    def refusal(self, new_env: Mapping[str, str]) -> dict[str, object] | None:
        """Why the command may not restart into ``new_env`` (the warning's fields), or None."""
        return refusal(self.argv, self.env, new_env)
