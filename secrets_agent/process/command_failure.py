"""Why a command could not be started, in the shell's terms: 127 when there is nothing to run,
126 when there is something that cannot be run. The one home of these words: exec
(``execute``), supervise mode (``spawn``) and the socket hand-over (``listen``) all say them,
so a command fails with the same line whichever way the agent starts it."""

from __future__ import annotations

import errno
import os
import stat

from secrets_agent.core.errors import AgentError, CommandNotExecutableError, CommandNotFoundError
from secrets_agent.process.fastpath import find_executable


def not_found(name: str) -> CommandNotFoundError:
    """127: nothing named ``name`` exists (in PATH, for a name without a ``/``)."""
    if not name:
        return CommandNotFoundError("empty command name", hint="give the command to run")
    where = "" if "/" in name else " in PATH"
    return CommandNotFoundError(f"{name}: not found{where}", hint="check the command and PATH")


def cannot_run(name: str, path: str) -> CommandNotExecutableError:
    """126: ``path`` (what ``name`` found) exists but is a directory or not executable."""
    try:
        is_directory = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        is_directory = False
    if is_directory:
        return CommandNotExecutableError(
            f"{name}: is a directory", hint="name the program to run, not its folder"
        )
    return CommandNotExecutableError(
        f"{name}: permission denied",
        hint="check its execute permission and that its file system is not mounted noexec",
    )


def command_failure(name: str, error: OSError | ValueError, *, search: str | None) -> AgentError:
    """The error of a failed ``execve``/``posix_spawn`` of ``name`` (looked up in ``search``,
    the command's PATH). Names the command as given, never its arguments or environment."""
    if isinstance(error, ValueError):  # what execve refuses before the kernel sees it
        return CommandNotExecutableError(
            f"{name}: cannot be executed (an argument or the environment holds a NUL byte)",
            hint="check the command line",
        )
    code = error.errno or 0
    if code in (errno.ENOENT, errno.ENOTDIR):
        found, _ = find_executable(name, search)
        if found is None:
            return not_found(name)
        return CommandNotFoundError(
            f"{name}: its #! interpreter was not found",
            hint="check the script's first line, or install the interpreter it names",
        )
    if code == errno.EACCES or code == errno.EPERM:
        return cannot_run(name, error.filename or find_executable(name, search)[1] or name)
    if code == errno.ENOEXEC:
        return CommandNotExecutableError(
            f"{name}: not an executable format",
            hint="a script needs a #! line; a program must be built for this platform",
        )
    if code == errno.E2BIG:
        return CommandNotExecutableError(
            f"the environment and arguments for {name} exceed the kernel's limit",
            hint="load fewer or smaller secrets, or pass large values through a file",
        )
    return CommandNotExecutableError(
        f"{name}: cannot be executed ({os.strerror(code)})",
        hint="check that it is a valid executable for this platform",
    )
