"""What a check is and what it found: the watcher's protocol, one check in a worker thread,
and the supervisor's refusal of a new environment (``secrets_agent.supervise.supervisor``
acts on the outcome).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from secrets_agent.core.errors import AgentError
from secrets_agent.process.execsize import check_exec_size
from secrets_agent.process.spawn import find_command


@dataclass(frozen=True)
class Change:
    """What a check found.

    ``env``: the command's complete new environment, or None when there is nothing for the
    supervisor to act on (redeploy mode acts on a change itself and restarts nothing).
    ``changes``: what changed, as names and versions only (for example
    ``"ssm:/app/secret_key_base version 3 -> 4"``). ``stretch``: pacing, the number of
    intervals to wait before the next check (redeploy mode: the service's running tasks), or
    None to keep the current one.
    """

    env: Mapping[str, str] | None = None
    changes: tuple[str, ...] = ()
    stretch: int | None = None


class Watcher(Protocol):
    def poll(self) -> Change | None:
        """Check for changed secrets.

        Return a :class:`Change` when something changed (or when the pacing did), None when
        nothing changed. Raise ``AgentError`` when the check or the re-resolution fails:
        the supervisor logs it, keeps the running command and tries again next interval.
        A change is reported again by every poll until ``commit`` is called.
        """
        ...

    def commit(self) -> None:
        """The environment from the last ``poll`` is now the command's (or is no change):
        stop reporting it. Not called when the supervisor refuses the new environment."""
        ...


#: ``on_reaped(pid, wait status, peak RSS in KiB)``: True when ``pid`` was the hook's own
#: process (a check process), whose status it takes; the supervisor then ignores it.
OnReaped = Callable[[int, int, int], bool]


class _Check:
    """One ``watcher.poll()`` in a worker thread; wakes the supervising thread when done."""

    def __init__(self, watcher: Watcher, wake_thread: int) -> None:
        self.watcher = watcher
        self.wake_thread = wake_thread
        self.done = threading.Event()
        self.result: Change | None = None
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


def refusal(
    argv: Sequence[str], env: Mapping[str, str], new_env: Mapping[str, str]
) -> dict[str, object] | None:
    """Why the command ``argv``, running with ``env``, may not restart into ``new_env`` (the
    warning's fields), or None."""
    removed = sorted(env.keys() - new_env.keys())
    if removed:
        # Never restart into a partial environment.
        return {
            "error": (
                f"the new secrets would remove {', '.join(removed)} from the command's "
                "environment (a parameter or secret deleted, renamed or scheduled for "
                "deletion, or a JSON key renamed)"
            ),
            "hint": "restore it, or deploy (start a new task) to run without it",
            "removed": removed,
        }
    try:
        # Known before the running command is stopped: a new environment too large for
        # execve keeps the running command (fail-static).
        path = find_command(argv[0], new_env.get("PATH", os.environ.get("PATH")))
        check_exec_size(argv, new_env, filename=path)
    except AgentError as exc:
        return {"error": exc.line().removeprefix("secrets-agent: ")}
    return None


def metrics(**counts: float) -> dict[str, float]:
    """A check's metrics: one check, and what it found."""
    return {"Checks": 1, "FailedChecks": 0, "ChangesSeen": 0} | counts


def changed_names(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
