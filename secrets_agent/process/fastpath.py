"""The no-prefix path: decide "nothing to do" with ``str`` methods alone, then ``execve``.

The entrypoint imports this module before anything else of the agent, and it imports nothing
that ``python3 -c pass`` has not imported already (``os``, ``_signal``): no ``typing``, no
``enum`` (``signal`` pulls it in), no ``re``, not even ``collections.abc``. With nothing to
resolve, the agent then costs what the interpreter costs; ``python -X importtime`` shows it.
"""

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (3 ms)
if TYPE_CHECKING:
    import signal as _signal  # the typed face of the same C module
    from collections.abc import Mapping, Sequence
    from typing import NoReturn
else:
    import _signal  # imported by the interpreter already; `signal` adds enum (2.6 ms)

#: An Encryption SDK value: the one home of this prefix (the references parse it, the pipeline
#: decrypts what starts with it, ``secrets_agent.aws.envelope`` writes and reads it).
AESDK_PREFIX = "aesdk:"
_REFERENCE_STARTS = ("ssm:", "secretsmanager:", AESDK_PREFIX)
#: The two prefix settings: a variable within two edits of one (or the same but for case) is a
#: typo that would otherwise mean "no prefix" and start the command with nothing loaded.
PREFIX_VARIABLES = ("PARAMETER_STORE_PREFIX", "SECRETS_MANAGER_PREFIX")
#: The agent's reserved namespace: every name in it is a setting of the table, or a mistake.
NAMESPACE = "SECRETS_AGENT_"
_ARN_SERVICES = ("ssm", "secretsmanager")
# CPython ignores these at start-up; an ignored disposition survives execve, so reset them.
_RESET = ("SIGPIPE", "SIGXFSZ")


def is_aesdk(value: str) -> bool:
    """Is ``value`` an ``aesdk:`` value (to decrypt)?"""
    return value.startswith(AESDK_PREFIX)


def looks_like_reference(value: str) -> bool:
    """Could ``value`` be a reference? (``secrets_agent.core.references`` parses it for real.)"""
    if value.startswith(_REFERENCE_STARTS):
        return True
    if value.startswith("arn:"):
        parts = value.split(":", 3)
        if len(parts) < 4 or parts[2] not in _ARN_SERVICES:
            return False
        # Only an SSM *parameter* ARN is a reference; a document, automation definition or
        # any other SSM resource is an ordinary value (Secrets Manager ARNs name secrets only).
        return parts[2] != "ssm" or ":parameter/" in parts[3] or parts[3].endswith(":parameter")
    return False


def within_two_edits(word: str, target: str) -> bool:
    """Is ``word`` at most two insertions, deletions or substitutions away from ``target``?

    A Levenshtein distance in plain loops (no import), for names whose length is within two
    of the target's and that hold one of three pieces of it (a necessary condition), given up
    as soon as every path costs more than two.
    """
    if abs(len(word) - len(target)) > 2:
        return False
    # Two edits change at most two of three pieces of the target: if none of them is in the
    # word, the distance is more than two (a substring test, in C, for every unrelated name).
    third = len(target) // 3
    if (
        target[:third] not in word
        and target[third : 2 * third] not in word
        and target[2 * third :] not in word
    ):
        return False
    return edit_distance(word, target, limit=2) <= 2


def edit_distance(word: str, target: str, *, limit: int | None = None) -> int:
    """The Levenshtein distance of ``word`` and ``target`` (insertions, deletions,
    substitutions), in plain loops; past ``limit`` it stops and answers ``limit + 1``."""
    previous = list(range(len(target) + 1))
    for i, char in enumerate(word, start=1):
        current = [i]
        for j, other in enumerate(target, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        if limit is not None and min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def suspicious_name(key: str) -> bool:
    """Could ``key`` be a misspelt agent setting? (``secrets_agent.core.settings`` names which, and
    why.)

    Cheap on purpose, for every variable of every start: a name in (or like) the reserved
    namespace, or within two edits of a prefix setting, case ignored.
    """
    upper = key.upper()
    if upper.startswith(NAMESPACE) or ("AGENT" in upper and "SECRET" in upper):
        return True
    for target in PREFIX_VARIABLES:
        if within_two_edits(upper, target):
            return True
    return False


def needs_agent(environ: "Mapping[str, str]") -> bool:
    """True when there is anything to resolve, any agent setting to honour, or a variable that
    looks like a misspelt setting (the settings then refuse it, 78, naming the right one)."""
    for key, value in environ.items():
        if not value:
            continue
        if key in PREFIX_VARIABLES:
            return True  # a blank one too: the settings refuse it (78) rather than ignore it
        if key.startswith(NAMESPACE):
            return True
        if looks_like_reference(value):
            return True
        if suspicious_name(key):
            return True
    return False


# What CPython sets LC_CTYPE to when it coerces the C locale at start-up (PEP 538).
_COERCED = ("C.UTF-8", "C.utf8", "UTF-8")


def undo_locale_coercion() -> None:
    """Give ``os.environ`` back the LC_CTYPE the agent was started with.

    Under the C locale (no LANG, no LC_ALL), CPython sets ``LC_CTYPE=C.UTF-8`` in its own
    environment; the command would inherit it (and Ruby's default encoding changes with it).
    ``/proc/self/environ`` still holds the environment execve gave: its LC_CTYPE (or none)
    is put back.
    """
    value = os.environ.get("LC_CTYPE")
    if value not in _COERCED:
        return
    try:
        with open("/proc/self/environ", "rb") as initial:
            entries = initial.read().split(b"\0")
    except OSError:
        return
    for entry in entries:
        if entry.startswith(b"LC_CTYPE="):
            original = os.fsdecode(entry[len(b"LC_CTYPE=") :])
            if original != value:
                os.environ["LC_CTYPE"] = original
            return
    del os.environ["LC_CTYPE"]


def restore_signals() -> None:
    """Before ``execve``: the signals CPython ignores back to their default, and an empty mask.

    The one home of this rule (``secrets_agent.process.execute`` imports it), through ``_signal``
    (``signal`` is 2.6 ms)."""
    for name in _RESET:
        signum = getattr(_signal, name, None)
        if signum is not None:
            _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def find_executable(name: str, search: "str | None") -> "tuple[str | None, str | None]":
    """execvp's PATH search, the one home of it (exec, supervise mode's spawn and the socket
    hand-over all ask it): (the first candidate that is a regular file this process may execute
    or None; the first other candidate that exists, a directory or a file without execute
    permission, or None). A name with a ``/`` is its only candidate; ``search`` None is the
    system's default PATH, and an empty entry is the working directory."""
    if "/" in name:
        candidates = [name]
    else:
        directories = (os.defpath if search is None else search).split(":")
        candidates = [os.path.join(directory or ".", name) for directory in directories]
    unusable = None
    for candidate in candidates:
        try:
            mode = os.stat(candidate).st_mode
        except (OSError, ValueError):
            continue
        if mode & 0o170000 == 0o100000 and os.access(candidate, os.X_OK):  # S_ISREG
            return candidate, unusable
        unusable = unusable or candidate
    return None, unusable


def execvpe(argv: "list[str]", env: "Mapping[str, str]") -> "NoReturn":
    """``execve`` what :func:`find_executable` finds for ``argv[0]`` in ``env``'s PATH (without
    ``os.get_exec_path``, which imports ``warnings``): an executable file, else the first thing
    found, whose ``execve`` then says why it cannot run; FileNotFoundError when nothing is."""
    found, unusable = find_executable(argv[0], env.get("PATH"))
    target = found or unusable
    if target is None:
        raise FileNotFoundError(2, "No such file or directory", argv[0])
    os.execve(target, argv, env)


def strip_separator(command: "Sequence[str]") -> "list[str]":
    """The command without one leading ``--`` (``exec -- CMD``, ``docker-entrypoint.py -- CMD``):
    the one home of this rule, for the entrypoints and the cli."""
    return list(command[1:]) if command[:1] == ["--"] else list(command)


def exec_if_nothing_to_do(command: "Sequence[str]") -> None:
    """Replace the process with ``command`` when there is nothing for the agent to do.

    Returns when there is something to do, or when the command could not be executed: the
    caller then takes the full path, which reports the failure (126 or 127, one stderr line).
    """
    undo_locale_coercion()
    if not command or not command[0] or needs_agent(os.environ):
        return
    restore_signals()
    try:
        execvpe(list(command), os.environ)
    except (OSError, ValueError):
        return
