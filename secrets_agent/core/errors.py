"""Typed errors. Each carries the exit code the contract gives it.

Messages name parameters, secrets and variables, never values. ``cli.main`` is the
one place where these become an exit code and one stderr line.
"""

from __future__ import annotations

from collections.abc import Mapping

from secrets_agent import __version__
from secrets_agent.core.printable import MAX_LINE, capped, printable


class AgentError(Exception):
    """Base of every failure the agent reports itself."""

    exit_code = 70
    kind = "internal error"
    #: the kind as one word, for the ``kind`` field of the JSON error event (a log filter)
    slug = "internal"

    def __init__(
        self, message: str, *, hint: str = "", details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: more fields for the JSON error event (identifiers such as an endpoint host)
        self.details: dict[str, str] = dict(details or {})

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

    def event(self) -> dict[str, object]:
        """The JSON error event's fields (JSON log mode): what ``line`` says, field by field."""
        fields: dict[str, object] = {
            "exit_code": self.exit_code,
            "kind": self.slug,
            "message": self.message,
            "hint": self.hint,
        }
        fields.update(self.details)
        return fields


class UsageError(AgentError):
    exit_code = 64
    kind = "usage"
    slug = "usage"


class DataError(AgentError):
    exit_code = 65
    kind = "bad secret data"
    slug = "invalid"


class NotFoundError(AgentError):
    exit_code = 66
    kind = "not found"
    slug = "not_found"


class ServiceError(AgentError):
    exit_code = 69
    kind = "AWS unavailable"
    slug = "unavailable"


class UnreachableError(ServiceError):
    """69 because AWS gave no usable answer in time (the network, a timeout, throttling, a 5xx):
    ``secrets_agent.aws.bounded.run_bounded`` adds the endpoint host and the last attempt's
    failure."""


class OutputError(AgentError):
    exit_code = 74
    kind = "I/O error"
    slug = "output"


class AccessDeniedError(AgentError):
    exit_code = 77
    kind = "access denied"
    slug = "access_denied"


class ConfigError(AgentError):
    exit_code = 78
    kind = "invalid configuration"
    slug = "config"


class CommandNotExecutableError(AgentError):
    exit_code = 126
    kind = "cannot execute"
    slug = "not_executable"


class CommandNotFoundError(AgentError):
    exit_code = 127
    kind = "command not found"
    slug = "command_not_found"
