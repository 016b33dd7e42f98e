"""Process plumbing for supervise mode: find and start the command, subreaping, terminals.

The command is started with ``posix_spawn``: an empty signal mask (a mask is inherited
through exec, and the supervisor blocks the signals it reads with ``sigtimedwait``), every
signal at its default disposition (CPython ignores SIGPIPE and SIGXFSZ, and an ignored
disposition survives exec), and its own process group, as under tini. A command that cannot
be started raises ``CommandNotFoundError`` (127) or ``CommandNotExecutableError`` (126), in
``secrets_agent.process.command_failure``'s words.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence

from secrets_agent.process.command_failure import cannot_run, command_failure, not_found
from secrets_agent.process.execsize import check_exec_size
from secrets_agent.process.fastpath import find_executable

# Every signal whose disposition can be set. (glibc 2.36's posix_spawn itself leaves its two
# internal signals, 32 and 33, ignored in the child; they are not the application's to use.)
DEFAULTED = frozenset(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4


def path_of(env: Mapping[str, str]) -> str | None:
    """The PATH a command is looked up in: its own environment's, else the agent's."""
    return env.get("PATH", os.environ.get("PATH"))


def find_command(name: str, path: str | None) -> str:
    """Resolve ``name`` as ``execvp`` would (``fastpath.find_executable``): 127 when nothing is
    found, 126 when only something that cannot be executed is
    (``secrets_agent.process.command_failure``)."""
    found, unusable = find_executable(name, path) if name else (None, None)
    if found is not None:
        return found
    if unusable is not None:
        raise cannot_run(name, unusable)
    raise not_found(name)


def spawn_command(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start ``argv`` (looked up in ``env``'s PATH) with a clean signal state; return its pid."""
    path = find_command(argv[0], path_of(env))
    check_exec_size(argv, env, filename=path)
    try:
        return os.posix_spawn(
            path,
            list(argv),
            env,
            setpgroup=0,
            setsigmask=set(),  # given explicitly: leaving it out keeps the supervisor's mask
            setsigdef=DEFAULTED,
        )
    except (OSError, ValueError) as exc:  # a missing interpreter, ENOEXEC, EACCES on a mount...
        raise command_failure(argv[0], exc, search=path_of(env)) from exc


def set_subreaper() -> bool:
    """Make orphaned descendants ours to reap even when we are not PID 1 (like ``tini -s``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_undumpable() -> bool:
    """``PR_SET_DUMPABLE`` 0: no core dump of this process (it holds every secret), and no
    other process of the same uid may ptrace it or open its ``/proc/PID/fd``, ``environ`` or
    ``mem``. execve resets the flag: the command keeps its own."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def owns_terminal() -> bool:
    """True when stdin is a terminal whose foreground process group is ours."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def give_terminal(pid: int) -> None:
    """Make the command's process group the terminal's foreground, as tini does, so that
    ``docker run -it ... rails console`` reads the terminal and gets ^C itself."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # after a restart we are in the background
    try:
        os.tcsetpgrp(0, pid)
    except OSError:
        pass
