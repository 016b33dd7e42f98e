"""The agent's settings: ONE declaration (the table ``SETTINGS``), one parser, a frozen value.

Each setting is a row: its variable, its field, its default, and the function that reads its
text (or says, in words, why it cannot). Nothing else declares them: the README's table, the
error lines and the tests all follow this one. No pydantic: its import costs 0.15-0.25 s on a
small container CPU, more than botocore and more than the whole Python start, and a table of a
dozen variables does the job (docs/performance.md has the measurement).

The grammar is deliberately narrow: decimal numbers only (``30``, ``0.5``: no sign, exponent,
``_`` or ``nan``), the words listed for booleans and choices (any case, spaces around ignored),
comma-separated lists. An empty variable is unset, as for every agent setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent import aws_names
from agent.errors import ConfigError

# Supervise mode's checks: at least every 30 s. Each check reads every loaded secret again, and
# the account's default Parameter Store throughput is 40 requests a second per Region, shared by
# GetParameter, GetParameters and GetParametersByPath (100 for GetParametersByPath even with
# higher throughput on). 50 tasks with 30 parameters each (4 pages) checking every 30 s use
# ~7 of those 40; every second, 200 of them. The test suite lowers this module attribute in its
# own wrapper (tests/bin/short_interval_entrypoint.py); no setting changes it.
MIN_WATCH_INTERVAL = 30.0
MAX_WATCH_INTERVAL = 86400.0
#: One entry of SECRETS_AGENT_ALLOW: a variable name, where ``*`` matches any run.
ALLOW_ENTRY = re.compile(r"[A-Za-z0-9_*]+\Z")
#: A CloudWatch namespace: 1-255 of these characters, and never AWS's own ``AWS/``.
METRICS_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}\Z")
#: An ECS cluster or service name (ECS allows letters, digits, hyphens and underscores, 1-255).
ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")
#: The longest SECRETS_AGENT_RESTART_SPREAD, in seconds (a day).
MAX_RESTART_SPREAD = 86400.0
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


class _Invalid(ValueError):
    """Why a value cannot be read, in words for the one error line."""


@dataclass(frozen=True)
class Settings:
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
    files: tuple[tuple[str, str], ...] = ()
    metrics: Literal["off", "emf"] = "off"
    metrics_namespace: str = "SecretsAgent"
    ecs_cluster: str | None = None
    ecs_service: str | None = None
    restart_spread: float = 0.0
    listen: tuple[str, ...] = ()
    ready_timeout: float = 120.0

    @property
    def supervise(self) -> bool:
        return self.watch_interval > 0


# ------------------------------------------------------------------------------ the readers
_PREFIXES = {
    "parameter_store_prefix": (
        aws_names.SSM_NAME_CHARS,
        aws_names.SSM_NAME_PUNCTUATION,
        aws_names.SSM_NAME_MAX,
        "an SSM parameter name",
    ),
    "secrets_manager_prefix": (
        aws_names.SM_NAME_CHARS,
        aws_names.SM_NAME_PUNCTUATION,
        aws_names.SM_NAME_MAX,
        "a secret name",
    ),
}


def prefix_problem(value: str, field: str) -> str | None:
    """Why a set, non-empty prefix variable is invalid, or None.

    A prefix variable holds one prefix or a comma-separated list of them (layers; AWS names
    cannot hold a comma). Each entry follows every rule of a single prefix; an empty entry or
    one listed twice is a mistake too.
    """
    if "," not in value:
        return _one_prefix_problem(value, field)
    from agent.layers import same_prefix_key

    entries = value.split(",")
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not entry.strip():
            return (
                f"entry {number} of its {len(entries)} comma-separated prefixes is empty; "
                "list each prefix once, separated by single commas"
            )
        problem = _one_prefix_problem(entry, field)
        if problem is not None:
            return f"prefix {entry.strip()[:100]!r} (entry {number}): {problem}"
        key = same_prefix_key(entry.strip())
        if key in seen:
            return f"prefix {entry.strip()[:100]!r} is listed twice; list each prefix once"
        seen.add(key)
    return None


def normalize_prefixes(value: str) -> str:
    """The prefix variable as it is kept: each entry stripped, joined by single commas."""
    return ",".join(part.strip() for part in value.split(","))


def _one_prefix_problem(value: str, field: str) -> str | None:
    """Why one prefix is invalid, or None.

    Whitespace around a prefix is ignored; a prefix of whitespace alone (a space, a tab, a
    no-break space) is a mistake, not "unset": only the empty string is unset.
    """
    chars, punctuation, limit, what = _PREFIXES[field]
    stripped = value.strip()
    if not stripped:
        return (
            f"it holds only whitespace ({value[:20]!r}); set a prefix, or leave it empty to "
            "load nothing"
        )
    if not re.fullmatch(f"[{chars}]+", stripped):
        return (
            f"a prefix holds only letters, digits and {punctuation} as AWS names do "
            "(no spaces, ':' or wildcards such as '*')"
        )
    # The shortest name under it: the prefix, its separator unless it ends with one, a character.
    if len(stripped) + (1 if stripped.endswith(aws_names.SEPARATORS) else 2) > limit:
        return (
            f"it is {len(stripped)} characters long, so no name fits under it ({what} holds "
            f"at most {limit} characters, the prefix included)"
        )
    if field == "parameter_store_prefix":
        levels = len([part for part in stripped.split("/") if part])
        if levels > aws_names.SSM_MAX_LEVELS:
            return (
                f"it has {levels} levels ('/'-separated parts), but an SSM parameter name has "
                f"at most {aws_names.SSM_MAX_LEVELS}"
            )
    return None


def _prefix(field: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        problem = prefix_problem(value, field)
        if problem is not None:
            raise _Invalid(problem)
        return normalize_prefixes(value)

    return read


def _bool(value: str) -> bool:
    try:
        return _BOOLS[value.strip().lower()]
    except KeyError:
        raise _Invalid("use true or false (also 1/0, yes/no, on/off)") from None


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    shown = f"more than {low:g}" if low_open else f"{low:g}"

    def read(value: str) -> float:
        if not _NUMBER.match(value.strip()):
            raise _Invalid(f"give a number of seconds such as 30 or 0.5, from {shown} to {high:g}")
        number = float(value)
        if number > high or number < low or (low_open and number == low):
            raise _Invalid(f"give a number of seconds from {shown} to {high:g}")
        return number

    return read


def _interval(value: str) -> float:
    # 0 is exec mode; anything else is a check every that many seconds, not so often that a
    # fleet uses up the account's request quota. (1e-400 is not a way to say exec mode.)
    problem = (
        f"use 0 (exec mode) or {MIN_WATCH_INTERVAL:g} to {MAX_WATCH_INTERVAL:g} seconds (each "
        "check reads every loaded secret again: a shorter interval across a fleet uses up the "
        "account's AWS request quota)"
    )
    try:
        number = _number(0, MAX_WATCH_INTERVAL)(value)
    except _Invalid:
        raise _Invalid(problem) from None
    if 0 < number < MIN_WATCH_INTERVAL:
        raise _Invalid(problem)
    return number


def _choice(*choices: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        word = value.strip().lower()
        if word not in choices:
            raise _Invalid("use one of " + ", ".join(choices))
        return word

    return read


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _key_arns(value: str) -> tuple[str, ...]:
    arns = _list(value)
    for arn in arns:
        if not aws_names.KMS_KEY_ONLY_ARN.match(arn):
            raise _Invalid("each entry must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    return arns


def namespace_problem(value: str) -> str | None:
    """Why a CloudWatch namespace is invalid, or None."""
    if not METRICS_NAMESPACE.match(value) or not value.strip():
        return (
            "a CloudWatch namespace holds 1-255 letters, digits, spaces and . - _ / # : "
            "(SecretsAgent, kptboard/secrets)"
        )
    if value.startswith("AWS/"):
        return "namespaces starting with AWS/ are AWS's own"
    return None


def _namespace(value: str) -> str:
    problem = namespace_problem(value)
    if problem is not None:
        raise _Invalid(problem)
    return value


def _allow(value: str) -> tuple[str, ...]:
    entries = _list(value)
    if not entries or not all(ALLOW_ENTRY.match(entry) for entry in entries):
        raise _Invalid(
            "give comma-separated variable names, where * matches any run of characters "
            "(DATABASE_URL,SECRET_KEY_BASE,RAILS_*)"
        )
    return entries


def _ecs_name(value: str) -> str:
    if not ECS_NAME.match(value.strip()):
        raise _Invalid("an ECS name holds 1-255 letters, digits, hyphens and underscores")
    return value.strip()


def _files(value: str) -> tuple[tuple[str, str], ...]:
    from agent.secret_files import parse_mapping

    try:
        return parse_mapping(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _listen(value: str) -> tuple[str, ...]:
    from agent.listen import parse_addresses

    try:
        return tuple(address.text for address in parse_addresses(value))
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


@dataclass(frozen=True)
class Setting:
    variable: str
    field: str
    read: Callable[[str], Any]


#: Every setting, in the order the README lists them. Defaults are the Settings fields'.
SETTINGS: tuple[Setting, ...] = (
    Setting("PARAMETER_STORE_PREFIX", "parameter_store_prefix", _prefix("parameter_store_prefix")),
    Setting("SECRETS_MANAGER_PREFIX", "secrets_manager_prefix", _prefix("secrets_manager_prefix")),
    Setting("SECRETS_AGENT_OVERRIDE", "override", _bool),
    Setting("SECRETS_AGENT_TIMEOUT", "timeout", _number(0, 3600, low_open=True)),
    Setting("SECRETS_AGENT_WATCH_INTERVAL", "watch_interval", _interval),
    Setting("SECRETS_AGENT_ON_CHANGE", "on_change", _choice("restart", "exit", "redeploy")),
    Setting("SECRETS_AGENT_STOP_TIMEOUT", "stop_timeout", _number(0, 3600)),
    Setting("SECRETS_AGENT_KMS_KEY_ARNS", "kms_key_arns", _key_arns),
    Setting("SECRETS_AGENT_LOG_FORMAT", "log_format", _choice("json", "text")),
    Setting("SECRETS_AGENT_LOG_LEVEL", "log_level", _choice("debug", "info", "warning", "error")),
    Setting("SECRETS_AGENT_ALLOW", "allow", _allow),
    Setting("SECRETS_AGENT_FILES", "files", _files),
    Setting("SECRETS_AGENT_METRICS", "metrics", _choice("off", "emf")),
    Setting("SECRETS_AGENT_METRICS_NAMESPACE", "metrics_namespace", _namespace),
    Setting("SECRETS_AGENT_ECS_CLUSTER", "ecs_cluster", _ecs_name),
    Setting("SECRETS_AGENT_ECS_SERVICE", "ecs_service", _ecs_name),
    Setting("SECRETS_AGENT_RESTART_SPREAD", "restart_spread", _number(0, MAX_RESTART_SPREAD)),
    Setting("SECRETS_AGENT_LISTEN", "listen", _listen),
    Setting("SECRETS_AGENT_READY_TIMEOUT", "ready_timeout", _number(0, 3600, low_open=True)),
)
VARIABLES = tuple(setting.variable for setting in SETTINGS)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ`` only; the first bad value is a ConfigError naming its variable."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        text = environ.get(setting.variable)
        if not text:
            continue  # unset, or empty: the default
        try:
            values[setting.field] = setting.read(text)
        except _Invalid as exc:
            raise ConfigError(
                f"{setting.variable} is invalid: {exc}", hint=f"fix or unset {setting.variable}"
            ) from None
    return Settings(**values)
