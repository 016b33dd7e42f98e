"""secrets_agent.core.settings: one declaration, one grammar, no pydantic; defaults, what each
spelling means, valid and invalid values of every variable."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secrets_agent.core import settings
from secrets_agent.core.errors import ConfigError
from tests.conftest import ROOT
from tests.support.fresh import imported_by
from tests.support.settings_support import context

# Seconds: decimal numbers only. What pydantic accepted and this grammar does not is listed too:
# a second grammar is how "1e2" came to mean 100 and "1_0" to mean 10.
NUMBERS = {
    "0": 0.0,
    "0.5": 0.5,
    "1": 1.0,
    "05": 5.0,
    " 5 ": 5.0,
    "3600": 3600.0,
    "3600.0": 3600.0,
    "29.999": 29.999,
    "5.": None,
    ".5": None,
    "1e2": None,
    "1_0": None,
    "+5": None,
    "-1": None,
    "nan": None,
    "inf": None,
    "1e-400": None,
    "x": None,
    "1.2.3": None,
    "0.0000001": None,
    "30s": None,
}


def _assert_reads(variable: str, text: str, field: str, expected: object, error: str) -> None:
    """``variable=text`` (in its context) gives ``field == expected`` (of its type), or with
    ``expected`` None, a ConfigError matching ``error``."""
    environ = context(variable) | {variable: text}
    if expected is None:
        with pytest.raises(ConfigError, match=error):
            settings.load_settings(environ)
    else:
        got = getattr(settings.load_settings(environ), field)
        assert type(got) is type(expected) and got == expected


@pytest.mark.parametrize(("text", "expected"), NUMBERS.items())
def test_one_number_grammar(text: str, expected: float | None) -> None:
    variable = "SECRETS_AGENT_STOP_TIMEOUT"
    _assert_reads(variable, text, "stop_timeout", expected, f"{variable} is invalid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0.0),
        ("30", 30.0),
        ("86400", 86400.0),
        ("29.999", None),
        ("0.001", None),
        ("1e-400", None),
        ("86401", None),
        ("-0", None),
    ],
)
def test_watch_interval_is_0_or_within_the_floor_and_the_ceiling(
    text: str, expected: float | None
) -> None:
    variable = "SECRETS_AGENT_WATCH_INTERVAL"
    _assert_reads(variable, text, "watch_interval", expected, f"{variable} is invalid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("YES", True),
        ("On", True),
        ("1", True),
        (" true", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
        ("2", None),
        ("yes!", None),
    ],
)
def test_booleans(text: str, expected: bool | None) -> None:
    _assert_reads("SECRETS_AGENT_OVERRIDE", text, "override", expected, "SECRETS_AGENT_OVERRIDE")


def test_every_setting_is_a_field_with_a_default_and_a_row_of_the_settings_table() -> None:
    fields = set(settings.Settings.__dataclass_fields__)
    assert {s.field for s in settings.SETTINGS} == fields
    assert len(settings.VARIABLES) == len(set(settings.VARIABLES))
    readme = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M))
    assert set(settings.VARIABLES) <= table


#: docs/configuration.md's "takes effect only with" column for each ``needs`` of the table.
NEEDS_IN_README = {
    "": "-",
    "supervise": "supervise mode",
    "restart": "supervise mode, `restart`",
    "redeploy": "redeploy mode",
    "listen": "`SECRETS_AGENT_LISTEN`",
    "emf": "`SECRETS_AGENT_METRICS=emf`",
    "prefix": "a prefix",
    "source": "a prefix or a reference",
    "files": "a prefix, or its variables set",
}


def test_the_settings_table_says_what_each_setting_takes_effect_with() -> None:
    readme = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    start = readme.index("| variable | meaning | default | takes effect only with |")
    table = readme[start : readme.index("\n\n", start)]
    column = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `([A-Z_]+)` \|.*\|([^|]*)\|$", table, flags=re.M)
    }
    for setting in settings.SETTINGS:
        assert column[setting.variable] == NEEDS_IN_README[setting.needs], setting.variable


def test_an_empty_variable_is_unset() -> None:
    environ = {variable: "" for variable in settings.VARIABLES}
    assert settings.load_settings(environ) == settings.Settings()


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY2 = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def test_defaults() -> None:
    s = settings.load_settings({})
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
    s = settings.load_settings({})
    assert s.timeout == 30
    assert s.parameter_store_prefix is None


def test_field_names_are_ignored_and_a_lower_case_setting_is_78() -> None:
    s = settings.load_settings({"timeout": "5", "override": "true"})
    assert s.timeout == 30
    assert s.override is False
    with pytest.raises(ConfigError, match=r"secrets_agent_timeout .*SECRETS_AGENT_TIMEOUT"):
        settings.load_settings({"secrets_agent_timeout": "5"})


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
    assert getattr(settings.load_settings(context(var) | {var: value}), field) == expected


def test_watch_interval_above_zero_is_supervise_mode() -> None:
    assert settings.load_settings({"SECRETS_AGENT_WATCH_INTERVAL": "30"}).supervise is True


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
    s = settings.load_settings({var: value})
    assert value in (s.parameter_store_prefix, s.secrets_manager_prefix)


@pytest.mark.parametrize(("var", "value"), INVALID)
def test_invalid_value_is_a_config_error_naming_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings.load_settings({var: value})
    assert info.value.exit_code == 78
    assert var in info.value.message
    assert var in info.value.hint


def test_first_invalid_variable_is_named_among_valid_ones() -> None:
    with pytest.raises(ConfigError, match="SECRETS_AGENT_ON_CHANGE"):
        settings.load_settings(
            {
                "SECRETS_AGENT_TIMEOUT": "5",
                "SECRETS_AGENT_ON_CHANGE": "bogus",
                "PARAMETER_STORE_PREFIX": "/a",
            }
        )


@pytest.mark.parametrize("var", settings.VARIABLES)
def test_empty_string_is_unset(var: str) -> None:
    assert settings.load_settings({var: ""}) == settings.load_settings({})


def test_unrelated_variables_are_ignored_and_unknown_agent_ones_are_78() -> None:
    s = settings.load_settings({"PATH": "/bin", "AWS_REGION": "us-east-1", "SECRET_KEY_BASE": "x"})
    assert s == settings.load_settings({})
    with pytest.raises(ConfigError, match="SECRETS_AGENT_UNKNOWN is not a setting"):
        settings.load_settings({"SECRETS_AGENT_UNKNOWN": "x"})


def test_settings_are_frozen() -> None:
    s = settings.load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.timeout = 1  # type: ignore[misc]


@given(
    st.dictionaries(
        st.sampled_from(settings.VARIABLES), st.text(max_size=30), max_size=len(settings.VARIABLES)
    )
)
@example({"SECRETS_AGENT_TIMEOUT": "1e309"})
@example({"SECRETS_AGENT_WATCH_INTERVAL": "-0"})
@example({"SECRETS_AGENT_KMS_KEY_ARNS": ",,,"})
def test_any_text_is_a_value_or_one_config_error_naming_its_variable(
    environ: dict[str, str],
) -> None:
    try:
        got = settings.load_settings(environ)
    except ConfigError as exc:
        assert exc.exit_code == 78
        named = [v for v in settings.VARIABLES if exc.message.startswith(v + " ")]
        assert named and named[0] in environ
        assert "\n" not in exc.line()
        return
    assert 0 < got.timeout <= 3600
    assert 0 <= got.watch_interval <= 86400
    assert 0 <= got.stop_timeout <= 3600


def test_loading_settings_imports_no_pydantic_and_no_botocore() -> None:
    code = (
        "from secrets_agent.core.settings import load_settings\n"
        "s = load_settings({'PARAMETER_STORE_PREFIX': '/a', 'SECRETS_AGENT_TIMEOUT': '5',"
        " 'SECRETS_AGENT_WATCH_INTERVAL': '60', 'SECRETS_AGENT_LOG_LEVEL': 'debug'})\n"
        "assert s.timeout == 5.0 and s.supervise, s\n"
    )
    assert imported_by(code, ["pydantic", "pydantic_settings", "botocore"]) == []
