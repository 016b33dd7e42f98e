"""Replace the agent with the command: execve, with the shell's 126/127 on failure."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from secrets_agent.core.errors import AgentError, CommandNotExecutableError, CommandNotFoundError
from secrets_agent.process.execsize import check_exec_size
from secrets_agent.process.fastpath import execvpe, restore_signals


def flush_std_streams() -> None:
    """Flush stdout and stderr; either may be closed (``sys.stdout`` is None under ``>&-``)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _which(name: str, env: Mapping[str, str]) -> str:
    """The path execvpe will try first, for sizing (execvpe reports its own errors)."""
    from secrets_agent.process.spawn import find_command

    try:
        return find_command(name, env.get("PATH", os.environ.get("PATH")))
    except AgentError:
        return name


def exec_command(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """``execvpe`` the command; raise 127/126 errors naming the command (never the env)."""
    if not argv[0]:
        raise CommandNotFoundError("empty command name", hint="give the command to run")
    check_exec_size(argv, env, filename=_which(argv[0], env))
    restore_signals()
    flush_std_streams()
    try:
        execvpe(list(argv), dict(env))
    except FileNotFoundError as exc:
        raise CommandNotFoundError(
            f"{argv[0]!r} was not found", hint="check the command and PATH"
        ) from exc
    except PermissionError as exc:
        raise CommandNotExecutableError(
            f"{argv[0]!r} is not executable", hint="check its permissions and mount options"
        ) from exc
    except ValueError as exc:  # what execve refuses before the kernel sees it
        raise CommandNotExecutableError(
            f"{argv[0]!r} cannot be executed (an argument or the environment is invalid)",
            hint="check the command line",
        ) from exc
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            raise CommandNotExecutableError(
                f"the environment and arguments for {argv[0]!r} exceed the kernel's limit",
                hint="load fewer or smaller secrets, or pass large values through a file",
            ) from exc
        raise CommandNotExecutableError(
            f"{argv[0]!r} cannot be executed ({errno.errorcode.get(exc.errno or 0, exc.errno)})",
            hint="check that it is a valid executable for this platform",
        ) from exc
