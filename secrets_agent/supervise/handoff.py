"""Supervise mode with SECRETS_AGENT_LISTEN: a rotation without a closed port.

The agent binds the listening sockets once (``secrets_agent.process.listen``) and passes them to
every command
it starts, with a ``NOTIFY_SOCKET`` of the command's own (``secrets_agent.process.notify``). On a
rotation:

1. The secret files (SECRETS_AGENT_FILES) are written with the new values: the new command
   reads them when it boots. The running command keeps what it has read; a file it reads
   again from now on holds the new value.
2. The new command starts with the new environment, on the same sockets: both accept.
3. When it sends ``READY=1`` and holds every socket, it is the command: the old one gets
   ``SIGTERM`` (its requests in flight finish; ``SIGKILL`` to its process group after
   SECRETS_AGENT_STOP_TIMEOUT), and the next check waits until it has exited.
4. When the new command exits, sends ``STOPPING=1`` before ``READY=1``, is not ready within
   SECRETS_AGENT_READY_TIMEOUT, or does not hold the sockets (its bind is another address),
   it is stopped as in 3., the files are written back with the running command's values, a
   warning names the cause, and the next check tries again: the old command never stopped.

A command that never sent ``READY=1`` (no notify support) gets the fallback: stop, then start
on the held sockets (restart mode's order), so a connection waits in the backlog for one boot
instead of being refused. Which of the two a task gets is one log line once the first command
is ready or the ready timeout has passed.

While two commands run, a forwarded signal goes to both; the agent's status is still that of
the command that serves, returned once every command it started is reaped.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from secrets_agent.core.errors import AgentError
from secrets_agent.process.listen import Listeners, spawn_listening
from secrets_agent.process.notify import NotifySocket, NotifySockets
from secrets_agent.process.spawn import exit_code, give_terminal
from secrets_agent.supervise.supervisor import Supervisor, _Check

if TYPE_CHECKING:
    from secrets_agent.core.settings import Settings

#: How often the notify sockets are read while a readiness is awaited.
POLL = 0.05


@dataclass
class _Incoming:
    pid: int
    env: dict[str, str]
    started: float
    deadline: float
    changed: list[str] = field(default_factory=list)


class HandoffSupervisor(Supervisor):
    """A :class:`Supervisor` that owns the listening sockets and overlaps two commands on a
    rotation. Built by :func:`listening`."""

    def __init__(self, *args: Any, listeners: Listeners, ready_timeout: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.listeners = listeners
        self.ready_timeout = ready_timeout
        self.notify_dir = NotifySockets()
        self.notify: dict[int, NotifySocket] = {}  # pid -> its socket, until it is reaped
        self.announced = False  # which rotation applies has been logged
        self.ready_seen = False  # a command this agent started has sent READY=1
        self.first_deadline: float | None = None
        self.incoming: _Incoming | None = None
        self.outgoing: dict[int, float | None] = {}  # pid -> when to SIGKILL it
        self.retry_env: dict[str, str] | None = None
        self.final_code: int | None = None

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        self.log.info(
            "listening",
            addresses=[a.text for a in self.listeners.addresses],
            ready_timeout=self.ready_timeout,
        )
        try:
            return super().run()
        finally:
            for sock in self.notify.values():
                sock.close()
            self.notify.clear()
            self.notify_dir.remove()
            self.listeners.close()

    def step(self) -> int | None:
        code = super().step()
        if code is None and self.final_code is not None and self.alone():
            self.log.info("command exited", exit_code=self.final_code)
            return self.final_code
        return code

    def timeout(self) -> float:
        wait = super().timeout()
        if self.incoming is not None or not self.announced:
            wait = min(wait, POLL)  # later, a READY=1 is read at the loop's safety wake
        now = time.monotonic()
        for kill_at in self.outgoing.values():
            if kill_at is not None:
                wait = min(wait, max(0.0, kill_at - now))
        return wait

    def alone(self) -> bool:
        return self.incoming is None and not self.outgoing

    # -- starting: the sockets and a notify socket for each command ---------------------------
    def spawn(self, env: Mapping[str, str]) -> int:
        sock = self.notify_dir.new()
        try:
            pid = spawn_listening(self.argv, env, self.listeners, {"NOTIFY_SOCKET": sock.path})
        except BaseException:
            sock.close()
            raise
        self.notify[pid] = sock
        return pid

    def start(self, env: Mapping[str, str]) -> None:
        super().start(env)
        if not self.announced and self.first_deadline is None:
            self.first_deadline = time.monotonic() + self.ready_timeout

    # -- signals and exits --------------------------------------------------------------------
    def on_signal(self, sig: signal.Signals) -> None:
        super().on_signal(sig)
        if sig == signal.SIGCHLD:
            return
        others = [*self.outgoing, *([self.incoming.pid] if self.incoming else [])]
        for pid in others:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            self.log.log(
                "debug" if sig == signal.SIGWINCH else "info",
                "signal forwarded",
                signal=sig.name,
                pid=pid,
            )

    def reaped(self, pid: int, status: int) -> bool:
        sock = self.notify.pop(pid, None)
        if sock is not None:
            sock.read()
            sock.close()
        if self.incoming is not None and pid == self.incoming.pid:
            incoming, self.incoming = self.incoming, None
            if self.shutdown or self.final_code is not None:
                self.log.info("new command exited", pid=pid, exit_code=exit_code(status))
            else:
                self.fail(incoming, f"it exited with status {exit_code(status)} before READY=1")
            self.resume()
            return True
        if pid in self.outgoing:
            del self.outgoing[pid]
            self.log.info("old command exited", pid=pid, exit_code=exit_code(status))
            self.resume()
            return True
        return False

    def on_exit(self, code: int) -> int | None:
        if self.stopping is not None or self.alone():
            return super().on_exit(code)
        # The serving command exited while another runs: its status is the agent's, returned
        # once the others are reaped (stopped now, unless a stop signal already reached them).
        self.final_code = code
        self.next_check = math.inf
        if self.incoming is not None:
            pid, self.incoming = self.incoming.pid, None
            if self.shutdown:
                self.outgoing[pid] = None  # it got the signal: the orchestrator's grace period
            else:
                self.terminate(pid)
                self.outgoing[pid] = time.monotonic() + self.stop_timeout
        return None  # an old command being stopped keeps its own stop timeout

    def terminate(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    # -- a rotation ---------------------------------------------------------------------------
    def stop(self, reason: Any) -> None:
        sock = self.notify.get(self.child) if self.child is not None else None
        if reason != "restart" or self.pending_env is None or sock is None or not sock.ready:
            super().stop(reason)  # exit mode, or the fallback: stop, then start (on exit)
            return
        env, self.pending_env, self.retry_env = self.pending_env, None, None
        now = time.monotonic()
        changed = sorted(k for k in self.env.keys() | env.keys() if self.env.get(k) != env.get(k))
        try:
            command_env = self.prepare(env) if self.prepare is not None else env
            pid = self.spawn(command_env)
        except AgentError as exc:
            self.restore_files()
            self.retry_env = env
            self.warn(exc.line().removeprefix("secrets-agent: "), changed=changed)
            self.next_check = now + self.jittered()
            return
        self.incoming = _Incoming(pid, env, now, now + self.ready_timeout, changed)
        self.next_check = math.inf  # until the old command is gone: two at most
        self.log.info(
            "handoff started", pid=pid, old_pid=self.child, ready_timeout=self.ready_timeout
        )

    def on_check(self, check: _Check, now: float) -> None:
        retry = self.retry_env
        super().on_check(check, now)
        if retry is None or self.retry_env is not retry:
            return
        if check.error is not None:
            return  # a failed check: the next one tries again
        if check.result is not None:
            self.retry_env = None  # superseded by what this check found
            return
        if self.shutdown or self.stopping is not None or not self.alone():
            return
        self.log.info("handoff retried", pid=self.child)
        self.pending_env = retry
        self.stop("restart")

    def on_timers(self) -> None:
        super().on_timers()
        now = time.monotonic()
        for pid, sock in list(self.notify.items()):
            sock.read()
            if self.incoming is not None and pid == self.incoming.pid:
                if sock.stopping and not sock.ready:
                    self.fail_incoming("it sent STOPPING=1 before READY=1")
                elif sock.ready:
                    self.promote(now)
            elif pid == self.child and sock.ready and not self.ready_seen:
                self.announce(handoff=True)
        if self.incoming is not None and now >= self.incoming.deadline:
            self.fail_incoming(
                f"it was not ready within {self.ready_timeout:g} s "
                "(no READY=1; SECRETS_AGENT_READY_TIMEOUT)"
            )
        if not self.announced and self.first_deadline is not None and now >= self.first_deadline:
            self.announce(handoff=False)  # READY=1 may still come: then the handoff line too
        for pid, kill_at in list(self.outgoing.items()):
            if kill_at is not None and now >= kill_at:
                self.outgoing[pid] = None
                self.log.warning(
                    "stop timeout expired",
                    pid=pid,
                    stop_timeout=self.stop_timeout,
                    signal="SIGKILL",
                )
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def announce(self, *, handoff: bool) -> None:
        self.announced = True
        if handoff:
            self.ready_seen = True
            self.log.info(
                "command ready: a rotation starts the new command on the same sockets and "
                "stops this one once the new one is ready",
                rotation="handoff",
                pid=self.child,
            )
            missing = self.listeners.missing_in(self.child) if self.child is not None else None
            if missing:
                self.log.warning(
                    "the command does not serve on the agent's sockets: connections there "
                    "wait and are never answered",
                    addresses=missing,
                    hint="make the command's bind (puma -b, port) the same address as "
                    "SECRETS_AGENT_LISTEN",
                )
        else:
            self.log.info(
                f"no READY=1 from the command within {self.ready_timeout:g} s: a rotation "
                "stops it, then starts the new one on the held sockets (connections wait "
                "in the backlog)",
                rotation="stop-then-start",
                pid=self.child,
            )

    def promote(self, now: float) -> None:
        incoming = self.incoming
        if incoming is None:
            return
        missing = self.listeners.missing_in(incoming.pid)
        if missing:
            self.fail_incoming(
                f"it does not serve on {', '.join(missing)} (it closed the socket: its bind "
                "must be the same address as in SECRETS_AGENT_LISTEN)"
            )
            return
        self.incoming = None
        old = self.child
        self.child = incoming.pid
        self.env = incoming.env
        if self.owns_tty:
            give_terminal(incoming.pid)
        if old is not None:
            self.terminate(old)
            self.outgoing[old] = now + self.stop_timeout
        self.event(
            "info",
            "command handed over",
            {"Restarts": 1},
            pid=incoming.pid,
            old_pid=old,
            changed=incoming.changed,
            ready_after=round(now - incoming.started, 3),
        )
        self.resume()

    def fail_incoming(self, why: str) -> None:
        incoming, self.incoming = self.incoming, None
        if incoming is None:
            return
        self.terminate(incoming.pid)
        self.outgoing[incoming.pid] = time.monotonic() + self.stop_timeout
        self.fail(incoming, why)

    def fail(self, incoming: _Incoming, why: str) -> None:
        self.restore_files()
        self.retry_env = incoming.env
        self.warn(f"the new command (pid {incoming.pid}) failed: {why}", changed=incoming.changed)

    def warn(self, error: str, *, changed: Sequence[str]) -> None:
        self.event(
            "warning",
            "secrets change not applied; command kept",
            {"FailedChecks": 1},
            pid=self.child,
            error=error,
            names=list(changed),
            hint="the running command serves on; the next check tries again",
        )

    def restore_files(self) -> None:
        """The secret files back to the running command's values."""
        if self.prepare is None:
            return
        try:
            self.prepare(self.env)
        except AgentError as exc:
            self.log.warning(
                "secret files not restored", error=exc.line().removeprefix("secrets-agent: ")
            )

    def resume(self) -> None:
        """Checks again once a single command runs."""
        if self.alone() and self.final_code is None and self.next_check == math.inf:
            self.next_check = time.monotonic() + self.jittered()


def listening(settings: Settings) -> Callable[..., HandoffSupervisor]:
    """The ``Supervisor`` for SECRETS_AGENT_LISTEN, to be called as ``Supervisor`` is: the
    sockets are bound now, before the first start (78 when one cannot be)."""
    from secrets_agent.core.addresses import parse_addresses
    from secrets_agent.process.listen import PROTOCOL_VARIABLES

    listeners = Listeners(parse_addresses(",".join(settings.listen)))
    for name in PROTOCOL_VARIABLES:  # the agent's own, if any: not for its check processes
        os.environ.pop(name, None)

    def make(argv: Sequence[str], env: Mapping[str, str], **kw: Any) -> HandoffSupervisor:
        return HandoffSupervisor(
            argv, env, listeners=listeners, ready_timeout=settings.ready_timeout, **kw
        )

    return make
