"""Will ``execve`` take this command line and environment? Checked before a command is started,
and in supervise mode before the running command is stopped for a new environment.

Linux (``fs/exec.c``) refuses an ``execve`` with ``E2BIG`` when

- one argument or one ``NAME=value`` string, with its NUL, is longer than ``MAX_ARG_STRLEN``
  (32 pages: 131072 bytes with 4 KiB pages), or
- the strings (each argument and ``NAME=value`` with its NUL, and the executable's path) and one
  pointer per argument and variable need more than a quarter of the stack limit
  (``RLIMIT_STACK``, ``ulimit -s``), capped at 6 MiB (3/4 of ``_STK_LIM``) and never below
  128 KiB. glibc's ``sysconf(_SC_ARG_MAX)`` is that quarter with the same floor.

A reserve covers what the kernel adds to a ``#!`` script's command line: the interpreter and its
argument (at most 256 bytes, ``BINPRM_BUF_SIZE``) and the script's path again. Messages name
variables and sizes, never a value. Light to import: the start-up fast path uses it too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from secrets_agent.core.errors import CommandNotExecutableError

LEGACY_ARG_MAX = 131072  # the kernel's floor (ARG_MAX in linux/limits.h)
STACK_ARGS_CAP = 8 * 1024 * 1024 // 4 * 3  # 3/4 of _STK_LIM, the kernel's cap since 4.13
POINTER = 8 if sys.maxsize > 2**32 else 4
SHEBANG_RESERVE = 256 + 2 * POINTER + 2  # a #! line's interpreter and argument, their pointers


def _page_size() -> int:
    try:
        return max(4096, os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 4096


def max_arg_strlen() -> int:
    """The longest single argument or ``NAME=value`` string, its NUL included."""
    return 32 * _page_size()


def arg_limit() -> int:
    """Bytes the kernel gives a new program's arguments and environment (strings and pointers)."""
    try:
        arg_max = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        arg_max = -1
    if arg_max <= 0:  # indeterminate: an unlimited stack
        arg_max = STACK_ARGS_CAP
    return max(min(arg_max, STACK_ARGS_CAP), LEGACY_ARG_MAX)


def exec_size_problem(
    argv: Sequence[str], env: Mapping[str, str], *, filename: str | None = None
) -> str | None:
    """None when ``execve(filename, argv, env)`` fits the kernel's limits, else what does not
    (names and sizes only)."""
    longest = max_arg_strlen()
    sizes: dict[str, int] = {}
    path = len(os.fsencode(filename if filename is not None else argv[0])) + 1
    total = path
    for index, arg in enumerate(argv):
        size = len(os.fsencode(arg)) + 1
        if size > longest:
            return (
                f"argument {index} of the command is {size} bytes, over the kernel's "
                f"{longest}-byte limit for one argument"
            )
        total += size
    for name, value in env.items():
        size = len(os.fsencode(name)) + len(os.fsencode(value)) + 2  # '=' and NUL
        if size > longest:
            return (
                f"variable {name} is {size} bytes as NAME=value, over the kernel's "
                f"{longest}-byte limit for one variable"
            )
        sizes[name] = size
        total += size
    total += (max(len(argv), 1) + len(env)) * POINTER
    allowed = arg_limit() - SHEBANG_RESERVE - path - POINTER
    if total <= allowed:
        return None
    largest = sorted(sizes, key=lambda n: (-sizes[n], n))[:3]
    shown = ", ".join(f"{n} ({sizes[n]} bytes)" for n in largest)
    return (
        f"the command line and environment ({total} bytes) exceed the kernel's limit of "
        f"{allowed} bytes (a quarter of the stack limit, ulimit -s, less a reserve for a #! "
        f"interpreter); largest variables: {shown}"
    )


def check_exec_size(
    argv: Sequence[str], env: Mapping[str, str], *, filename: str | None = None
) -> None:
    """Raise ``CommandNotExecutableError`` (126) when ``execve`` would refuse ``argv`` and
    ``env`` as too large (``E2BIG``), naming the largest variables (never a value)."""
    problem = exec_size_problem(argv, env, filename=filename)
    if problem is not None:
        raise CommandNotExecutableError(
            f"{argv[0]!r} cannot be started: {problem}",
            hint="load fewer or smaller secrets, or pass large values through a file",
        )
