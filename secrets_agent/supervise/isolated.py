"""Supervise mode without the AWS SDK in the supervising process.

The supervisor lives as long as the task; botocore's models and HTTP stack, once imported,
would stay resident in it for a check that runs every few minutes. So the first resolution and
every check run in a short-lived process of their own (``secrets_agent.supervise.check_process``),
and the supervisor keeps only the environment and the fingerprint (versions and value digests).

The request (settings, the agent's environment, the fingerprint to compare against) goes to the
child on its stdin, the answer (environment, new fingerprint, changed names and versions, or
an error's exit code and line) comes back on its stdout: secret values cross a pipe between
the two processes only, never argv, a file or a log. The child's log lines come back on a third
pipe and are written through the supervisor's own stderr (queued, never blocking it).

A child that outlives ``SECRETS_AGENT_TIMEOUT`` (plus ``MARGIN``) is killed: a failed check
(69). The supervisor reaps every child; it hands a check process's status here (:func:`claim`)
instead of logging it as an orphan (the supervisor's ``on_reaped`` hook).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from secrets_agent import __version__
from secrets_agent.core.errors import AgentError, ServiceError
from secrets_agent.core.printable import MAX_LINE, capped
from secrets_agent.supervise.messages import Fingerprint, decode_answer, encode_request

if TYPE_CHECKING:
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger
    from secrets_agent.output.metrics import Emf
    from secrets_agent.supervise.supervisor import Change

#: Seconds a check process may take beyond SECRETS_AGENT_TIMEOUT (its own bound) before the
#: supervisor kills it: the interpreter's start and the answer's transfer.
MARGIN = 5.0
#: An answer larger than this is refused (an environment execve could never take anyway).
MAX_ANSWER = 64 * 1024 * 1024


class RelayedError(AgentError):
    """An ``AgentError`` the child reported: its exit code, its line and its JSON event's
    fields, unchanged."""

    def __init__(
        self, code: int, line: str, kind: str | None = None, event: dict[str, Any] | None = None
    ) -> None:
        super().__init__(line.removeprefix("secrets-agent: "))
        self.exit_code = code
        self._line = line
        self._event = event
        if kind is not None:
            self.kind = kind

    def line(self, *, version: bool = False) -> str:
        if version:
            suffix = f" (secrets-agent {__version__})"
            return capped(self._line, MAX_LINE - len(suffix)) + suffix
        return self._line

    def event(self) -> dict[str, object]:
        return dict(self._event) if self._event is not None else super().event()


# -- the children this process is waiting for --------------------------------------------------
class _Child:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.done = threading.Event()
        self.status = 0
        self.peak_kb = 0


_children: dict[int, _Child] = {}
_lock = threading.Lock()


def claim(pid: int, status: int, peak_kb: int) -> bool:
    """Called by the supervisor's reaper for every pid it reaps: True when ``pid`` is a check
    process (its status is handed to the thread waiting for it)."""
    with _lock:
        child = _children.pop(pid, None)
    if child is None:
        return False
    child.status, child.peak_kb = status, peak_kb
    child.done.set()
    return True


def kill_running() -> None:
    """The supervisor is exiting: no check process outlives it."""
    with _lock:
        pids = list(_children)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(child: _Child) -> None:
    try:
        pid, status, usage = os.wait4(child.pid, 0)
    except ChildProcessError:
        child.done.wait(10.0)  # the supervisor's reaper took it and hands it over
        return
    with _lock:
        _children.pop(pid, None)
    child.status, child.peak_kb = status, usage.ru_maxrss
    child.done.set()


# -- the supervisor's side -----------------------------------------------------------------------
def child_environ(environ: Mapping[str, str], hidden: Iterable[str] = ()) -> dict[str, str]:
    """The check process's own environment: ``environ`` without the interpreter's variables
    (``PYTHONPATH``, ``PYTHONSTARTUP``, ... would run the app's code in it; ``-I`` ignores them
    too) and without ``hidden``, the variables whose values go to files."""
    drop = set(hidden)
    return {k: v for k, v in environ.items() if not k.startswith("PYTHON") and k not in drop}


def _check_argv() -> list[str]:
    """The check process's argv: this interpreter isolated (in the agent bundle too, whose
    interpreter is ``/opt/secrets-agent/bin/python3.11``)."""
    # Isolated mode (-I: no script or working directory on sys.path, no PYTHON* variables,
    # no user site) started in "/": a module planted in the app's working directory is never
    # imported. The agent's own directory is the one path added, computed here, never the
    # cwd. Not dumpable from the first statement on (PR_SET_DUMPABLE is 4; execve reset it).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import ctypes; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
        f"import os, sys; os.chdir('/'); sys.path.insert(0, {root!r}); "
        "import secrets_agent.supervise.check_process as m; m.main()"
    )
    return [sys.executable, "-I", "-c", code]


def _spawn(request: bytes, *, hidden: Iterable[str] = ()) -> tuple[_Child, int, int]:
    pipes = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr
    actions = [
        (os.POSIX_SPAWN_DUP2, pipes[0][0], 0),
        (os.POSIX_SPAWN_DUP2, pipes[1][1], 1),
        (os.POSIX_SPAWN_DUP2, pipes[2][1], 2),
    ]
    try:
        with _lock:  # registered before the reaper can see it exit
            pid = os.posix_spawn(
                sys.executable,
                _check_argv(),
                child_environ(os.environ, hidden),
                file_actions=actions,
                setsigmask=(),
            )
            child = _Child(pid)
            _children[pid] = child
    except OSError as exc:
        for fd in (pipes[0][1], pipes[1][0], pipes[2][0]):
            os.close(fd)
        raise ServiceError(
            f"the check process could not be started ({exc.strerror or type(exc).__name__})",
            hint="check the task's process and memory limits",
        ) from None
    finally:
        os.close(pipes[0][0])
        os.close(pipes[1][1])
        os.close(pipes[2][1])
    try:
        view = memoryview(request)
        while view:
            view = view[os.write(pipes[0][1], view) :]
    except BrokenPipeError:
        pass  # it died at once: its answer (none) says so
    finally:
        os.close(pipes[0][1])
    return child, pipes[1][0], pipes[2][0]


def run_child(
    kind: str,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    log: Logger,
    fingerprint: Fingerprint | None = None,
    emf: Emf | None = None,
    what: str,
    redeploy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one resolution (``kind`` "start") or check ("check") in a child process; its answer.

    Raises the child's ``AgentError`` as a :class:`RelayedError`, and ``ServiceError`` (69)
    when it outlives the timeout or ends without an answer.
    """
    request = encode_request(
        kind=kind,
        settings=settings,
        environ=environ,
        fingerprint=fingerprint,
        level=_level_name(log),
        fmt=log.fmt,
        emf=emf,
        redeploy=redeploy,
    )
    started = time.monotonic()
    child, out_fd, err_fd = _spawn(request, hidden=[name for name, _ in settings.files])
    answer, killed = _pump(child, out_fd, err_fd, log, deadline=started + settings.timeout + MARGIN)
    log.debug(
        "check process",
        pid=child.pid,
        kind=kind,
        status=child.status,
        peak_kb=child.peak_kb,
        took=round(time.monotonic() - started, 3),
    )
    if killed:
        raise ServiceError(
            f"{what} took longer than SECRETS_AGENT_TIMEOUT={settings.timeout:g}s "
            "(its process was killed)",
            hint="check that AWS is reachable and not throttling, or raise SECRETS_AGENT_TIMEOUT",
        )
    return _decode(answer, child, what)


def _pump(
    child: _Child, out_fd: int, err_fd: int, log: Logger, *, deadline: float
) -> tuple[bytes, bool]:
    """Read the child's answer and relay its log lines until both pipes close or ``deadline``
    passes; reap it. (the answer, whether it was killed for the deadline)."""
    answer = bytearray()
    relay = _LineRelay(log)
    killed = False
    try:
        killed = _read_until(child, {out_fd: answer.extend, err_fd: relay.feed}, deadline, answer)
        relay.flush()
    except BaseException:
        # A stop signal during the first resolution: nothing may outlive the agent.
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait(child)
        raise
    finally:
        os.close(out_fd)
        os.close(err_fd)
    _wait(child)
    return bytes(answer), killed


def _read_until(
    child: _Child,
    sinks: dict[int, Callable[[bytes], object]],
    deadline: float,
    answer: bytearray,
) -> bool:
    """Feed each pipe's data to its sink until all close; True when the deadline killed it.
    An answer over ``MAX_ANSWER`` kills the child too (its answer is then refused)."""
    import select

    poller = select.poll()
    for fd in sinks:
        poller.register(fd, select.POLLIN)
    open_fds = set(sinks)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(child.pid, signal.SIGKILL)
            return True
        for fd, _ in poller.poll(left * 1000):
            data = os.read(fd, 65536)
            if not data:
                poller.unregister(fd)
                open_fds.discard(fd)
                continue
            sinks[fd](data)
            if len(answer) > MAX_ANSWER:
                os.kill(child.pid, signal.SIGKILL)
                return False
    return False


class _LineRelay:
    """The child's stderr, written line by line through the supervisor's log stream."""

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._partial = b""

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            relay_line(self._log, line)

    def flush(self) -> None:
        if self._partial:
            relay_line(self._log, self._partial)


def _decode(answer: bytes, child: _Child, what: str) -> dict[str, Any]:
    """The child's answer; its error raised as a :class:`RelayedError`."""
    try:
        result = decode_answer(answer)
    except (ValueError, RecursionError):  # no answer, a partial one: the child died
        raise ServiceError(
            f"{what} failed: its process ended without an answer (wait status {child.status})",
            hint="check the agent's memory limit and the log lines before this one",
        ) from None
    error = result.get("error")
    if error is not None:
        raise RelayedError(error[0], error[1], error[2], error[3])
    return result


def _level_name(log: Logger) -> str:
    from secrets_agent.output.logs import LEVELS

    for name, number in LEVELS.items():
        if number == log.threshold:
            return name
    return "info"


def relay_line(log: Logger, line: bytes) -> None:
    stream = log.stream
    if stream is None:
        return
    from secrets_agent.core.printable import capped, printable

    try:  # escaped as every other line: the child's lines are text, whatever their bytes
        stream.write(capped(printable(line.decode("utf-8", "replace"))) + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class IsolatedWatcher:
    """Supervise mode's ``Watcher``: each poll is one check in a child process. The same
    contract as ``secrets_agent.supervise.watch.ResolveWatcher``, whose ``poll`` the child runs.

    With ``redeploy`` (redeploy mode: the service, when the command's values were resolved, the
    names it has), the child asks ECS for a deployment itself; the answer carries no
    environment, only the fingerprint it acted on and the pacing."""

    def __init__(
        self,
        *,
        settings: Settings,
        environ: Mapping[str, str],
        log: Logger,
        fingerprint: Fingerprint,
        redeploy: Mapping[str, Any] | None = None,
    ) -> None:
        self._redeploy = None if redeploy is None else dict(redeploy)
        self._settings = settings
        self._environ = dict(environ)
        self._log = log
        self._fingerprint = fingerprint
        self._pending: Fingerprint | None = None

    @property
    def fingerprint(self) -> Fingerprint:
        return self._fingerprint

    def poll(self) -> Change | None:
        from secrets_agent.supervise.supervisor import Change

        self._pending = None
        answer = run_child(
            "check",
            settings=self._settings,
            environ=self._environ,
            log=self._log,
            fingerprint=self._fingerprint,
            what="checking for changed secrets",
            redeploy=self._redeploy,
        )
        env: Mapping[str, str] | None = answer.get("env")
        if env is None:
            if "redeploy" not in answer:
                return None
            if "fingerprint" in answer:  # acted on in the child: seen
                self._fingerprint = answer["fingerprint"]
            changes = tuple(answer.get("changes", ()))
            return Change(changes=changes, stretch=answer["redeploy"]["stretch"])
        self._pending = answer["fingerprint"]
        return Change(env=env, changes=tuple(answer["changes"]))

    def commit(self) -> None:
        if self._pending is not None:
            self._fingerprint, self._pending = self._pending, None
