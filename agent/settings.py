"""The agent's settings as a plain frozen value, loaded without importing pydantic.

Importing pydantic-settings costs 0.15-0.25 s on a small container CPU: more than botocore and
more than the whole Python start. The agent reads fourteen variables, so the hot path parses the
usual, well-formed values here with the standard library, and hands anything else (a bad
value, or an unusual spelling such as ``1e2`` or ``1_000``) to ``agent.config``, whose
pydantic model stays the reference for what is valid and for the error message. A test checks
that both agree wherever this module answers on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

# Shared with agent.config, which validates the same variables with pydantic.
PREFIX_CHARS = {
    "parameter_store_prefix": r"[A-Za-z0-9_.\-/]+",
    "secrets_manager_prefix": r"[A-Za-z0-9/_+=.@\-]+",
}
#: One entry of SECRETS_AGENT_ALLOW: a variable name, where ``*`` matches any run.
ALLOW_ENTRY = r"[A-Za-z0-9_*]+"
# AWS's limits on a whole name below a prefix: an SSM parameter name holds at most 2048
# characters and 15 levels (``/``-separated parts); a secret name at most 512 characters. A
# prefix that leaves no room for a separator and one character can name nothing.
NAME_MAX_LENGTH = {"parameter_store_prefix": 2048, "secrets_manager_prefix": 512}
SSM_MAX_LEVELS = 15
_SEPARATORS = (".", "/", "-", "_")
_PREFIX_ALLOWED = {
    "parameter_store_prefix": "_.-/",
    "secrets_manager_prefix": "/_+=.@-",
}
#: An ECS cluster or service name (ECS allows letters, digits, hyphens and underscores, 1-255).
ECS_NAME = r"[A-Za-z0-9_-]{1,255}"
#: The longest SECRETS_AGENT_RESTART_SPREAD, in seconds (a day).
MAX_RESTART_SPREAD = 86400.0
KMS_KEY_ARN = (
    r"arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:key/[A-Za-z0-9-]+"
)
_NUMBER = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?\Z")
_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@dataclass(frozen=True)
class Settings:
    """Field names, types and defaults as in ``agent.config.Settings``."""

    parameter_store_prefix: str | None = None
    secrets_manager_prefix: str | None = None
    override: bool = False
    timeout: float = 30.0
    watch_interval: float = 0.0
    on_change: Literal["restart", "exit", "redeploy"] = "restart"
    stop_timeout: float = 10.0
    kms_key_arns: tuple[str, ...] = ()
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    allow: tuple[str, ...] | None = None
    ecs_cluster: str | None = None
    ecs_service: str | None = None
    restart_spread: float = 0.0

    @property
    def supervise(self) -> bool:
        return self.watch_interval > 0


class _Unsure(Exception):
    """This module does not decide; the pydantic model does."""


def prefix_problem(value: str, field: str) -> str | None:
    """Why a set, non-empty prefix variable is invalid, or None. Shared with agent.config.

    Whitespace around a prefix is ignored; a prefix of whitespace alone (a space, a tab, a
    no-break space) is a mistake, not "unset": only the empty string is unset.
    """
    stripped = value.strip()
    if not stripped:
        return (
            f"it holds only whitespace ({value[:20]!r}); set a prefix, or leave it empty to "
            "load nothing"
        )
    if not re.fullmatch(PREFIX_CHARS[field], stripped):
        return (
            f"a prefix holds only letters, digits and {_PREFIX_ALLOWED[field]} as AWS names do "
            "(no spaces, ':' or wildcards such as '*')"
        )
    limit = NAME_MAX_LENGTH[field]
    # The shortest name under it: the prefix, its separator unless it ends with one, a character.
    if len(stripped) + (1 if stripped.endswith(_SEPARATORS) else 2) > limit:
        what = "an SSM parameter name" if field == "parameter_store_prefix" else "a secret name"
        return (
            f"it is {len(stripped)} characters long, so no name fits under it ({what} holds "
            f"at most {limit} characters, the prefix included)"
        )
    if field == "parameter_store_prefix":
        levels = len([part for part in stripped.split("/") if part])
        if levels > SSM_MAX_LEVELS:
            return (
                f"it has {levels} levels ('/'-separated parts), but an SSM parameter name has "
                f"at most {SSM_MAX_LEVELS}"
            )
    return None


def _prefix(value: str, field: str) -> str:
    if prefix_problem(value, field) is not None:
        raise _Unsure
    return value.strip()


def _bool(value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise _Unsure from None


def _number(value: str, *, low: float, high: float, low_open: bool) -> float:
    if not _NUMBER.match(value):
        raise _Unsure
    number = float(value)
    if number > high or number < low or (low_open and number == low):
        raise _Unsure
    return number


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _Unsure
    return value


def _arns(value: str) -> tuple[str, ...]:
    arns = tuple(part.strip() for part in value.split(",") if part.strip())
    if not all(re.fullmatch(KMS_KEY_ARN, arn) for arn in arns):
        raise _Unsure
    return arns


def _allow(value: str) -> tuple[str, ...]:
    entries = tuple(part.strip() for part in value.split(",") if part.strip())
    if not entries or not all(re.fullmatch(ALLOW_ENTRY, entry) for entry in entries):
        raise _Unsure
    return entries


def _ecs_name(value: str) -> str:
    if not re.fullmatch(ECS_NAME, value.strip()):
        raise _Unsure
    return value.strip()


def parse_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from well-formed values only; raises ``_Unsure`` for anything else."""

    def get(name: str) -> str | None:
        value = environ.get(name)
        return value if value else None  # an empty variable counts as unset

    values: dict[str, object] = {}
    if (v := get("PARAMETER_STORE_PREFIX")) is not None:
        values["parameter_store_prefix"] = _prefix(v, "parameter_store_prefix")
    if (v := get("SECRETS_MANAGER_PREFIX")) is not None:
        values["secrets_manager_prefix"] = _prefix(v, "secrets_manager_prefix")
    if (v := get("SECRETS_AGENT_OVERRIDE")) is not None:
        values["override"] = _bool(v)
    if (v := get("SECRETS_AGENT_TIMEOUT")) is not None:
        values["timeout"] = _number(v, low=0, high=3600, low_open=True)
    if (v := get("SECRETS_AGENT_WATCH_INTERVAL")) is not None:
        values["watch_interval"] = _number(v, low=0, high=86400, low_open=False)
    if (v := get("SECRETS_AGENT_ON_CHANGE")) is not None:
        values["on_change"] = _choice(v.strip().lower(), ("restart", "exit", "redeploy"))
    if (v := get("SECRETS_AGENT_STOP_TIMEOUT")) is not None:
        values["stop_timeout"] = _number(v, low=0, high=3600, low_open=False)
    if (v := get("SECRETS_AGENT_KMS_KEY_ARNS")) is not None:
        values["kms_key_arns"] = _arns(v)
    if (v := get("SECRETS_AGENT_LOG_FORMAT")) is not None:
        values["log_format"] = _choice(v.strip().lower(), ("json", "text"))
    if (v := get("SECRETS_AGENT_LOG_LEVEL")) is not None:
        values["log_level"] = _choice(v.strip().lower(), ("debug", "info", "warning", "error"))
    if (v := get("SECRETS_AGENT_ALLOW")) is not None:
        values["allow"] = _allow(v)
    if (v := get("SECRETS_AGENT_ECS_CLUSTER")) is not None:
        values["ecs_cluster"] = _ecs_name(v)
    if (v := get("SECRETS_AGENT_ECS_SERVICE")) is not None:
        values["ecs_service"] = _ecs_name(v)
    if (v := get("SECRETS_AGENT_RESTART_SPREAD")) is not None:
        values["restart_spread"] = _number(
            v, low=0, high=MAX_RESTART_SPREAD, low_open=False
        )
    return Settings(**values)  # type: ignore[arg-type]


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from ``environ`` only; a bad value is a ConfigError naming the variable."""
    try:
        return parse_settings(environ)
    except _Unsure:
        pass
    from agent.config import load_settings as load_reference

    reference = load_reference(environ)  # raises the ConfigError for a bad value
    return Settings(**{f.name: getattr(reference, f.name) for f in fields(Settings)})
