"""settings.load_settings: defaults, valid and invalid values of every variable."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secrets_agent.core.errors import ConfigError
from secrets_agent.core.settings import load_settings
from tests.support.settings_support import context

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY2 = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def test_defaults() -> None:
    s = load_settings({})
    assert s.parameter_store_prefix is None
    assert s.secrets_manager_prefix is None
    assert s.override is False
    assert s.timeout == 30
    assert s.watch_interval == 0
    assert s.supervise is False
    assert s.on_change == "restart"
    assert s.stop_timeout == 10
    assert s.kms_key_arns == ()
    assert s.log_format is None
    assert s.log_level == "info"
    assert s.allow is None


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_AGENT_TIMEOUT", "5")
    monkeypatch.setenv("PARAMETER_STORE_PREFIX", "/from/os/environ")
    s = load_settings({})
    assert s.timeout == 30
    assert s.parameter_store_prefix is None


def test_field_names_are_ignored_and_a_lower_case_setting_is_78() -> None:
    s = load_settings({"timeout": "5", "override": "true"})
    assert s.timeout == 30
    assert s.override is False
    with pytest.raises(ConfigError, match=r"secrets_agent_timeout .*SECRETS_AGENT_TIMEOUT"):
        load_settings({"secrets_agent_timeout": "5"})


VALID: list[tuple[str, str, str, object]] = [
    ("PARAMETER_STORE_PREFIX", "/kptboard/prod", "parameter_store_prefix", "/kptboard/prod"),
    ("PARAMETER_STORE_PREFIX", "kptboard-rails", "parameter_store_prefix", "kptboard-rails"),
    ("PARAMETER_STORE_PREFIX", "  /a  ", "parameter_store_prefix", "/a"),
    ("SECRETS_MANAGER_PREFIX", "kptboard/prod", "secrets_manager_prefix", "kptboard/prod"),
    ("SECRETS_AGENT_OVERRIDE", "true", "override", True),
    ("SECRETS_AGENT_OVERRIDE", "false", "override", False),
    ("SECRETS_AGENT_OVERRIDE", "1", "override", True),
    ("SECRETS_AGENT_OVERRIDE", "0", "override", False),
    ("SECRETS_AGENT_OVERRIDE", "TRUE", "override", True),
    ("SECRETS_AGENT_TIMEOUT", "5", "timeout", 5.0),
    ("SECRETS_AGENT_TIMEOUT", "0.5", "timeout", 0.5),
    ("SECRETS_AGENT_TIMEOUT", "3600", "timeout", 3600.0),
    ("SECRETS_AGENT_WATCH_INTERVAL", "0", "watch_interval", 0.0),
    ("SECRETS_AGENT_WATCH_INTERVAL", "60", "watch_interval", 60.0),
    ("SECRETS_AGENT_WATCH_INTERVAL", "86400", "watch_interval", 86400.0),
    ("SECRETS_AGENT_ON_CHANGE", "restart", "on_change", "restart"),
    ("SECRETS_AGENT_ON_CHANGE", "exit", "on_change", "exit"),
    ("SECRETS_AGENT_STOP_TIMEOUT", "0", "stop_timeout", 0.0),
    ("SECRETS_AGENT_STOP_TIMEOUT", "25", "stop_timeout", 25.0),
    ("SECRETS_AGENT_KMS_KEY_ARNS", KEY, "kms_key_arns", (KEY,)),
    ("SECRETS_AGENT_KMS_KEY_ARNS", f"{KEY},{KEY2}", "kms_key_arns", (KEY, KEY2)),
    ("SECRETS_AGENT_KMS_KEY_ARNS", f" {KEY} , {KEY2} ,", "kms_key_arns", (KEY, KEY2)),
    ("SECRETS_AGENT_KMS_KEY_ARNS", " , ", "kms_key_arns", ()),
    ("SECRETS_AGENT_LOG_FORMAT", "json", "log_format", "json"),
    ("SECRETS_AGENT_LOG_FORMAT", "text", "log_format", "text"),
    ("SECRETS_AGENT_LOG_LEVEL", "debug", "log_level", "debug"),
    ("SECRETS_AGENT_LOG_LEVEL", "warning", "log_level", "warning"),
    ("SECRETS_AGENT_LOG_LEVEL", "INFO", "log_level", "info"),
    ("SECRETS_AGENT_ON_CHANGE", "Exit ", "on_change", "exit"),
    ("PARAMETER_STORE_PREFIX", "/kptboard/prod/", "parameter_store_prefix", "/kptboard/prod/"),
    (
        "SECRETS_MANAGER_PREFIX",
        "kptboard/prod+x@y=z",
        "secrets_manager_prefix",
        "kptboard/prod+x@y=z",
    ),
    ("SECRETS_AGENT_LOG_LEVEL", "error", "log_level", "error"),
    ("SECRETS_AGENT_ALLOW", "DATABASE_URL", "allow", ("DATABASE_URL",)),
    ("SECRETS_AGENT_ALLOW", " DATABASE_URL, RAILS_*,", "allow", ("DATABASE_URL", "RAILS_*")),
]


@pytest.mark.parametrize(("var", "value", "field", "expected"), VALID)
def test_valid_values(var: str, value: str, field: str, expected: object) -> None:
    assert getattr(load_settings(context(var) | {var: value}), field) == expected


def test_watch_interval_above_zero_is_supervise_mode() -> None:
    assert load_settings({"SECRETS_AGENT_WATCH_INTERVAL": "30"}).supervise is True


INVALID = [
    ("SECRETS_AGENT_OVERRIDE", "maybe"),
    ("SECRETS_AGENT_OVERRIDE", "2"),
    ("SECRETS_AGENT_TIMEOUT", "0"),
    ("SECRETS_AGENT_TIMEOUT", "-1"),
    ("SECRETS_AGENT_TIMEOUT", "abc"),
    ("SECRETS_AGENT_TIMEOUT", "nan"),
    ("SECRETS_AGENT_TIMEOUT", "inf"),
    ("SECRETS_AGENT_TIMEOUT", "3601"),
    ("SECRETS_AGENT_TIMEOUT", "30s"),
    ("SECRETS_AGENT_WATCH_INTERVAL", "-1"),
    ("SECRETS_AGENT_WATCH_INTERVAL", "nan"),
    ("SECRETS_AGENT_WATCH_INTERVAL", "86401"),
    ("SECRETS_AGENT_WATCH_INTERVAL", "1m"),
    ("SECRETS_AGENT_ON_CHANGE", "reload"),
    ("SECRETS_AGENT_ON_CHANGE", "reboot"),
    ("SECRETS_AGENT_STOP_TIMEOUT", "-0.1"),
    ("SECRETS_AGENT_STOP_TIMEOUT", "3601"),
    ("SECRETS_AGENT_STOP_TIMEOUT", "ten"),
    ("SECRETS_AGENT_KMS_KEY_ARNS", "alias/my-key"),
    ("SECRETS_AGENT_KMS_KEY_ARNS", "1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("SECRETS_AGENT_KMS_KEY_ARNS", "arn:aws:kms:us-east-1:123456789012:alias/my-key"),
    ("SECRETS_AGENT_KMS_KEY_ARNS", f"{KEY},arn:aws:kms:us-east-1:1234:key/x"),
    ("SECRETS_AGENT_KMS_KEY_ARNS", f"{KEY};{KEY2}"),
    ("SECRETS_AGENT_LOG_FORMAT", "yaml"),
    ("SECRETS_AGENT_LOG_LEVEL", "verbose"),
    ("SECRETS_AGENT_LOG_LEVEL", "trace"),
    ("PARAMETER_STORE_PREFIX", "/kptboard/prod env"),
    ("PARAMETER_STORE_PREFIX", "kptboard:rails"),
    ("SECRETS_MANAGER_PREFIX", "kptboard/prod*"),
    ("SECRETS_AGENT_ALLOW", " , "),
    ("SECRETS_AGENT_ALLOW", "DATABASE-URL"),
    ("SECRETS_AGENT_ALLOW", "RAILS_.*"),
    ("SECRETS_AGENT_ALLOW", "A;B"),
    # Whitespace alone is a mistake, not "unset" (only the empty string is unset).
    ("PARAMETER_STORE_PREFIX", "   "),
    ("PARAMETER_STORE_PREFIX", "\u00a0"),
    ("SECRETS_MANAGER_PREFIX", " \t"),
    ("SECRETS_MANAGER_PREFIX", "\n"),
    # Past AWS's limits: no name could be under it.
    ("PARAMETER_STORE_PREFIX", "/" + "a" * 2046),
    ("PARAMETER_STORE_PREFIX", "a" * 2047),
    ("PARAMETER_STORE_PREFIX", "".join(f"/l{i}" for i in range(16))),
    ("SECRETS_MANAGER_PREFIX", "a" * 511),
    ("SECRETS_MANAGER_PREFIX", "a/" * 256),
]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PARAMETER_STORE_PREFIX", "/" + "a" * 2045),
        ("PARAMETER_STORE_PREFIX", "a" * 2046),
        ("PARAMETER_STORE_PREFIX", "".join(f"/l{i}" for i in range(15))),
        ("SECRETS_MANAGER_PREFIX", "a" * 510),
        ("SECRETS_MANAGER_PREFIX", "a" * 510 + "/"),
    ],
)
def test_prefixes_at_aws_limits_are_valid(var: str, value: str) -> None:
    s = load_settings({var: value})
    assert value in (s.parameter_store_prefix, s.secrets_manager_prefix)


@pytest.mark.parametrize(("var", "value"), INVALID)
def test_invalid_value_is_a_config_error_naming_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({var: value})
    assert info.value.exit_code == 78
    assert var in info.value.message
    assert var in info.value.hint


def test_first_invalid_variable_is_named_among_valid_ones() -> None:
    with pytest.raises(ConfigError, match="SECRETS_AGENT_ON_CHANGE"):
        load_settings(
            {
                "SECRETS_AGENT_TIMEOUT": "5",
                "SECRETS_AGENT_ON_CHANGE": "bogus",
                "PARAMETER_STORE_PREFIX": "/a",
            }
        )


VARIABLES = [
    "PARAMETER_STORE_PREFIX",
    "SECRETS_MANAGER_PREFIX",
    "SECRETS_AGENT_OVERRIDE",
    "SECRETS_AGENT_TIMEOUT",
    "SECRETS_AGENT_WATCH_INTERVAL",
    "SECRETS_AGENT_ON_CHANGE",
    "SECRETS_AGENT_STOP_TIMEOUT",
    "SECRETS_AGENT_KMS_KEY_ARNS",
    "SECRETS_AGENT_LOG_FORMAT",
    "SECRETS_AGENT_LOG_LEVEL",
    "SECRETS_AGENT_ALLOW",
]


@pytest.mark.parametrize("var", VARIABLES)
def test_empty_string_is_unset(var: str) -> None:
    assert load_settings({var: ""}) == load_settings({})


def test_unrelated_variables_are_ignored_and_unknown_agent_ones_are_78() -> None:
    s = load_settings({"PATH": "/bin", "AWS_REGION": "us-east-1", "SECRET_KEY_BASE": "x"})
    assert s == load_settings({})
    with pytest.raises(ConfigError, match="SECRETS_AGENT_UNKNOWN is not a setting"):
        load_settings({"SECRETS_AGENT_UNKNOWN": "x"})


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.timeout = 1  # type: ignore[misc]


@given(st.dictionaries(st.sampled_from(VARIABLES), st.text(max_size=30)))
@example({"SECRETS_AGENT_TIMEOUT": "1e309"})
@example({"SECRETS_AGENT_WATCH_INTERVAL": "-0"})
@example({"SECRETS_AGENT_KMS_KEY_ARNS": ",,,"})
def test_any_values_give_settings_or_a_config_error(environ: dict[str, str]) -> None:
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        assert any(var in exc.message for var in environ)
        return
    assert 0 < settings.timeout <= 3600
    assert 0 <= settings.watch_interval <= 86400
    assert 0 <= settings.stop_timeout <= 3600
