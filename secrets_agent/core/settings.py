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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from secrets_agent.core.errors import ConfigError
from secrets_agent.core.setting_values import (
    Invalid,
    choice_reader,
    number_reader,
    prefix_reader,
    read_allow,
    read_bool,
    read_ecs_name,
    read_files,
    read_key_arns,
    read_listen,
    read_namespace,
    read_require,
)
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
#: The longest SECRETS_AGENT_RESTART_SPREAD, in seconds (a day).
MAX_RESTART_SPREAD = 86400.0


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


# It stays here, not with the other readers: it reads MIN_WATCH_INTERVAL from this module when
# it runs, the attribute the tests' wrapper lowers.
def _interval(value: str) -> float:
    # 0 is exec mode; anything else is a check every that many seconds, not so often that a
    # fleet uses up the account's request quota. (1e-400 is not a way to say exec mode.)
    problem = (
        f"use 0 (exec mode) or {MIN_WATCH_INTERVAL:g} to {MAX_WATCH_INTERVAL:g} seconds (each "
        "check reads every loaded secret again: a shorter interval across a fleet uses up the "
        "account's AWS request quota)"
    )
    try:
        number = number_reader(0, MAX_WATCH_INTERVAL)(value)
    except Invalid:
        raise Invalid(problem) from None
    if 0 < number < MIN_WATCH_INTERVAL:
        raise Invalid(problem)
    return number


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
    Setting(
        "PARAMETER_STORE_PREFIX", "parameter_store_prefix", prefix_reader("parameter_store_prefix")
    ),
    Setting(
        "SECRETS_MANAGER_PREFIX", "secrets_manager_prefix", prefix_reader("secrets_manager_prefix")
    ),
    Setting("SECRETS_AGENT_REQUIRE", "require", read_require),
    Setting("SECRETS_AGENT_OVERRIDE", "override", read_bool, needs="prefix"),
    Setting("SECRETS_AGENT_TIMEOUT", "timeout", number_reader(0, 3600, low_open=True)),
    Setting("SECRETS_AGENT_WATCH_INTERVAL", "watch_interval", _interval),
    Setting(
        "SECRETS_AGENT_ON_CHANGE",
        "on_change",
        choice_reader("restart", "exit", "redeploy"),
        needs="supervise",
    ),
    Setting(
        "SECRETS_AGENT_STOP_TIMEOUT", "stop_timeout", number_reader(0, 3600), needs="supervise"
    ),
    Setting("SECRETS_AGENT_KMS_KEY_ARNS", "kms_key_arns", read_key_arns),
    Setting("SECRETS_AGENT_LOG_FORMAT", "log_format", choice_reader("json", "text")),
    Setting(
        "SECRETS_AGENT_LOG_LEVEL", "log_level", choice_reader("debug", "info", "warning", "error")
    ),
    Setting("SECRETS_AGENT_ALLOW", "allow", read_allow, needs="source"),
    Setting("SECRETS_AGENT_FILES", "files", read_files, needs="files"),
    Setting("SECRETS_AGENT_METRICS", "metrics", choice_reader("off", "emf")),
    Setting("SECRETS_AGENT_METRICS_NAMESPACE", "metrics_namespace", read_namespace, needs="emf"),
    Setting("SECRETS_AGENT_ECS_CLUSTER", "ecs_cluster", read_ecs_name, needs="redeploy"),
    Setting("SECRETS_AGENT_ECS_SERVICE", "ecs_service", read_ecs_name, needs="redeploy"),
    Setting(
        "SECRETS_AGENT_RESTART_SPREAD",
        "restart_spread",
        number_reader(0, MAX_RESTART_SPREAD),
        needs="restart",
    ),
    Setting("SECRETS_AGENT_LISTEN", "listen", read_listen, needs="supervise"),
    Setting(
        "SECRETS_AGENT_READY_TIMEOUT",
        "ready_timeout",
        number_reader(0, 3600, low_open=True),
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
        except Invalid as exc:
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
