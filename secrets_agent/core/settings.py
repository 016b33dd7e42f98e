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

from secrets_agent.core import aws_names
from secrets_agent.core.errors import ConfigError
from secrets_agent.core.protected import VALID_NAME, is_protected
from secrets_agent.process.fastpath import (
    NAMESPACE,
    edit_distance,
    looks_like_reference,
    suspicious_name,
    within_two_edits,
)

# Supervise mode's checks: at least every 30 s. Each check reads every loaded secret again, and
# the account's default Parameter Store throughput is 40 requests a second per Region, shared by
# GetParameter, GetParameters and GetParametersByPath (100 for GetParametersByPath even with
# higher throughput on). 50 tasks with 30 parameters each (4 pages) checking every 30 s use
# ~7 of those 40; every second, 200 of them. The test suite lowers this module attribute in its
# own wrapper (tests/support/bin/short_interval_entrypoint.py); no setting changes it.
MIN_WATCH_INTERVAL = 30.0
MAX_WATCH_INTERVAL = 86400.0
#: One entry of SECRETS_AGENT_ALLOW: a variable name, where ``*`` matches any run.
ALLOW_ENTRY = re.compile(r"[A-Za-z0-9_*]+\Z")
#: A CloudWatch namespace: 1-255 of these characters, and never AWS's own ``AWS/``.
METRICS_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}\Z")
#: The longest SECRETS_AGENT_RESTART_SPREAD, in seconds (a day).
MAX_RESTART_SPREAD = 86400.0
#: One entry of SECRETS_AGENT_REQUIRE: a variable name.
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
    require: tuple[str, ...] = ()
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
    from secrets_agent.core.layers import prefix_entries, same_prefix_key

    entries = prefix_entries(value)
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
    from secrets_agent.core.layers import prefix_entries

    return ",".join(prefix_entries(value))


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
    if field == "parameter_store_prefix" and not stripped.strip("/"):
        return (
            f"{stripped!r} is every path parameter of the account and Region (path mode is "
            "recursive), so every team's secrets would be loaded and granted; name the app's "
            "own path, such as /myapp/prod"
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


def _require(value: str) -> tuple[str, ...]:
    entries = _list(value)
    if not entries or not all(VALID_NAME.match(entry) for entry in entries):
        raise _Invalid(
            "give comma-separated variable names, each letters, digits and _ not starting "
            "with a digit (SECRET_KEY_BASE,DATABASE_URL)"
        )
    return tuple(dict.fromkeys(entries))


def _ecs_name(value: str) -> str:
    if not aws_names.ECS_NAME.match(value.strip()):
        raise _Invalid("an ECS name holds 1-255 letters, digits, hyphens and underscores")
    return value.strip()


def parse_file_mapping(value: str) -> tuple[tuple[str, str], ...]:
    """``"A=path,B=path"`` -> ``(("A", "path"), ("B", "path"))``; ValueError saying why not."""
    entries: list[tuple[str, str]] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not path:
            raise ValueError(
                f"entry {entry[:80]!r} is not VARIABLE=PATH (comma-separated entries, such as "
                "RAILS_MASTER_KEY=config/credentials/production.key)"
            )
        if not VALID_NAME.match(name):
            raise ValueError(f"{name[:80]!r} in entry {entry[:80]!r} is not a variable name")
        if is_protected(name):
            raise ValueError(
                f"{name} is a protected variable, which the agent never moves to a file"
            )
        if any(name == seen for seen, _ in entries):
            raise ValueError(f"variable {name} is given twice")
        if any(path == seen for _, seen in entries):
            raise ValueError(f"path {path[:200]!r} is given twice")
        entries.append((name, path))
    if not entries:
        raise ValueError("it holds no VARIABLE=PATH entry")
    return tuple(entries)



def _files(value: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_file_mapping(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _listen(value: str) -> tuple[str, ...]:
    from secrets_agent.core.addresses import parse_addresses

    try:
        return tuple(address.text for address in parse_addresses(value))
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


# What a setting needs to take effect: set without it, it would be silently ignored, so it is
# 78 instead. Each condition: (whether it holds, what is missing, what to set).
_SUPERVISE = "SECRETS_AGENT_WATCH_INTERVAL"
_NEEDS: dict[str, tuple[Callable[[Settings, Mapping[str, str]], bool], str, str]] = {
    "supervise": (
        lambda s, e: s.supervise,
        f"it applies in supervise mode only, and {_SUPERVISE} is unset or 0 (exec mode)",
        f"set {_SUPERVISE} (30 to 86400 seconds)",
    ),
    "restart": (
        lambda s, e: s.supervise and s.on_change == "restart",
        f"it applies to supervise mode's restarts only ({_SUPERVISE} set, "
        "SECRETS_AGENT_ON_CHANGE=restart)",
        f"set {_SUPERVISE}, and SECRETS_AGENT_ON_CHANGE=restart or unset",
    ),
    "redeploy": (
        lambda s, e: s.supervise and s.on_change == "redeploy",
        f"it applies to redeploy mode only ({_SUPERVISE} set, SECRETS_AGENT_ON_CHANGE=redeploy)",
        f"set {_SUPERVISE} and SECRETS_AGENT_ON_CHANGE=redeploy",
    ),
    "listen": (
        lambda s, e: bool(s.listen),
        "it applies to the sockets of SECRETS_AGENT_LISTEN only, which is unset",
        "set SECRETS_AGENT_LISTEN, or leave this unset",
    ),
    "emf": (
        lambda s, e: s.metrics == "emf",
        "it applies to the metrics only, and SECRETS_AGENT_METRICS is unset or off",
        "set SECRETS_AGENT_METRICS=emf",
    ),
    "prefix": (
        lambda s, e: bool(s.parameter_store_prefix or s.secrets_manager_prefix),
        "it applies to values loaded from a prefix, and neither PARAMETER_STORE_PREFIX nor "
        "SECRETS_MANAGER_PREFIX is set",
        "set the prefix it was meant for",
    ),
    "files": (
        lambda s, e: (
            bool(s.parameter_store_prefix or s.secrets_manager_prefix)
            or any(e.get(name) for name, _ in s.files)
        ),
        "nothing can provide its variables: no PARAMETER_STORE_PREFIX or SECRETS_MANAGER_PREFIX, "
        "and none of them is set (as a reference or a value to move into its file)",
        "set the prefix or the variables it was meant for",
    ),
    "source": (
        lambda s, e: bool(s.parameter_store_prefix or s.secrets_manager_prefix)
        or any(looks_like_reference(value) for value in e.values()),
        "it names what is loaded, and nothing can be loaded: no PARAMETER_STORE_PREFIX, no "
        "SECRETS_MANAGER_PREFIX and no reference",
        "set the prefix or the reference it was meant for",
    ),
}


@dataclass(frozen=True)
class Setting:
    variable: str
    field: str
    read: Callable[[str], Any]
    #: What it takes effect with (a key of _NEEDS, "" for always): set without it, it is 78.
    needs: str = ""


#: Every setting, in the order the README lists them. Defaults are the Settings fields'.
SETTINGS: tuple[Setting, ...] = (
    Setting("PARAMETER_STORE_PREFIX", "parameter_store_prefix", _prefix("parameter_store_prefix")),
    Setting("SECRETS_MANAGER_PREFIX", "secrets_manager_prefix", _prefix("secrets_manager_prefix")),
    Setting("SECRETS_AGENT_REQUIRE", "require", _require),
    Setting("SECRETS_AGENT_OVERRIDE", "override", _bool, needs="prefix"),
    Setting("SECRETS_AGENT_TIMEOUT", "timeout", _number(0, 3600, low_open=True)),
    Setting("SECRETS_AGENT_WATCH_INTERVAL", "watch_interval", _interval),
    Setting(
        "SECRETS_AGENT_ON_CHANGE",
        "on_change",
        _choice("restart", "exit", "redeploy"),
        needs="supervise",
    ),
    Setting("SECRETS_AGENT_STOP_TIMEOUT", "stop_timeout", _number(0, 3600), needs="supervise"),
    Setting("SECRETS_AGENT_KMS_KEY_ARNS", "kms_key_arns", _key_arns),
    Setting("SECRETS_AGENT_LOG_FORMAT", "log_format", _choice("json", "text")),
    Setting("SECRETS_AGENT_LOG_LEVEL", "log_level", _choice("debug", "info", "warning", "error")),
    Setting("SECRETS_AGENT_ALLOW", "allow", _allow, needs="source"),
    Setting("SECRETS_AGENT_FILES", "files", _files, needs="files"),
    Setting("SECRETS_AGENT_METRICS", "metrics", _choice("off", "emf")),
    Setting("SECRETS_AGENT_METRICS_NAMESPACE", "metrics_namespace", _namespace, needs="emf"),
    Setting("SECRETS_AGENT_ECS_CLUSTER", "ecs_cluster", _ecs_name, needs="redeploy"),
    Setting("SECRETS_AGENT_ECS_SERVICE", "ecs_service", _ecs_name, needs="redeploy"),
    Setting(
        "SECRETS_AGENT_RESTART_SPREAD",
        "restart_spread",
        _number(0, MAX_RESTART_SPREAD),
        needs="restart",
    ),
    Setting("SECRETS_AGENT_LISTEN", "listen", _listen, needs="supervise"),
    Setting(
        "SECRETS_AGENT_READY_TIMEOUT",
        "ready_timeout",
        _number(0, 3600, low_open=True),
        needs="listen",
    ),
)
VARIABLES = tuple(setting.variable for setting in SETTINGS)


def name_problem(key: str) -> ConfigError | None:
    """Why the variable ``key`` (set, not a setting) is a mistake, or None.

    An unknown name in the reserved ``SECRETS_AGENT_`` namespace, and a name within two edits
    of a setting or equal to one but for case: a misspelt prefix would otherwise mean "no
    prefix", the command started with nothing loaded.
    """
    if key in VARIABLES:
        return None
    upper = key.upper()
    closest = min(VARIABLES, key=lambda variable: edit_distance(upper, variable))
    near = upper == closest or within_two_edits(upper, closest)
    if upper.startswith(NAMESPACE) and not near:
        return ConfigError(
            f"{key} is not a setting of secrets-agent (every name starting with {NAMESPACE} "
            "is reserved for its settings)",
            hint=f"remove or rename {key}; the README's Configuration table lists the settings "
            f"(closest: {closest})",
        )
    if not near:
        return None
    how = "differs only in case from" if upper == closest else "is a misspelling of"
    return ConfigError(
        f"{key} is not a setting; it {how} {closest}, which is unset, so it would be ignored",
        hint=f"rename {key} to {closest}",
    )


def _check_names(environ: Mapping[str, str]) -> None:
    for key, value in environ.items():
        if value and key not in VARIABLES and (suspicious_name(key) or key.upper() in VARIABLES):
            error = name_problem(key)
            if error is not None:
                raise error


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ`` only; the first bad value is a ConfigError naming its variable.

    Before the values: a misspelt or unknown setting name (78 naming the setting it was probably
    meant to be). After them: a setting that cannot take effect with the others (its ``needs``)
    is 78 saying why, rather than ignored.
    """
    _check_names(environ)
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
    settings = Settings(**values)
    for setting in SETTINGS:
        if setting.needs and environ.get(setting.variable):
            holds, why, fix = _NEEDS[setting.needs]
            if not holds(settings, environ):
                raise ConfigError(
                    f"{setting.variable} cannot take effect: {why}",
                    hint=f"{fix}, or unset {setting.variable}",
                )
    return settings
