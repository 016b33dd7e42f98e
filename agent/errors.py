"""Typed errors. Each carries the exit code the contract gives it.

Messages name parameters, secrets and variables, never values. ``cli.main`` is the
one place where these become an exit code and one stderr line.
"""

from __future__ import annotations

from agent import __version__
from agent.printable import MAX_LINE, capped, printable


class AgentError(Exception):
    """Base of every failure the agent reports itself."""

    exit_code = 70
    kind = "internal error"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self, *, version: bool = False) -> str:
        """The one stderr line: what failed and what to do (and, with ``version``, which agent
        said it: the last line a failed start leaves, ending in ``(secrets-agent 0.2.0)``).

        Messages quote names, keys and AWS error codes, which anyone who can write a parameter
        or answer a request chooses: escaped, so that the line stays one line.
        """
        text = f"secrets-agent: {self.kind}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        suffix = f" (secrets-agent {__version__})" if version else ""
        return capped(printable(text), MAX_LINE - len(suffix)) + suffix


class UsageError(AgentError):
    exit_code = 64
    kind = "usage"


class DataError(AgentError):
    exit_code = 65
    kind = "bad secret data"


class NotFoundError(AgentError):
    exit_code = 66
    kind = "not found"


class ServiceError(AgentError):
    exit_code = 69
    kind = "AWS unavailable"


class OutputError(AgentError):
    exit_code = 74
    kind = "I/O error"


class AccessDeniedError(AgentError):
    exit_code = 77
    kind = "access denied"


class ConfigError(AgentError):
    exit_code = 78
    kind = "invalid configuration"


class CommandNotExecutableError(AgentError):
    exit_code = 126
    kind = "cannot execute"


class CommandNotFoundError(AgentError):
    exit_code = 127
    kind = "command not found"
