"""Replace the agent with the command: execve, with the shell's 126/127 on failure."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from secrets_agent.core.errors import AgentError
from secrets_agent.process.command_failure import command_failure, not_found
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
    from secrets_agent.process.spawn import find_command, path_of

    try:
        return find_command(name, path_of(env))
    except AgentError:
        return name


def exec_command(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """``execvpe`` the command; raise 127/126 errors naming the command (never the env)."""
    if not argv[0]:
        raise not_found(argv[0])
    check_exec_size(argv, env, filename=_which(argv[0], env))
    restore_signals()
    flush_std_streams()
    try:
        execvpe(list(argv), dict(env))
    except (OSError, ValueError) as exc:
        raise command_failure(argv[0], exc, search=env.get("PATH")) from exc
