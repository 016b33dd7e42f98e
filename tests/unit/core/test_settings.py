"""secrets_agent.core.settings: one declaration, one grammar, no pydantic; what each spelling
means."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_agent.core import settings
from secrets_agent.core.errors import ConfigError
from tests.conftest import ROOT
from tests.support.settings_support import context

# STOP_TIMEOUT takes effect in supervise mode only, OVERRIDE with a prefix only.
SUPERVISE = context("SECRETS_AGENT_STOP_TIMEOUT")
PREFIX = context("SECRETS_AGENT_OVERRIDE")

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


@pytest.mark.parametrize(("text", "expected"), NUMBERS.items())
def test_one_number_grammar(text: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="SECRETS_AGENT_STOP_TIMEOUT is invalid"):
            settings.load_settings(SUPERVISE | {"SECRETS_AGENT_STOP_TIMEOUT": text})
    else:
        got = settings.load_settings(SUPERVISE | {"SECRETS_AGENT_STOP_TIMEOUT": text})
        assert got.stop_timeout == expected


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
    if expected is None:
        with pytest.raises(ConfigError, match="SECRETS_AGENT_WATCH_INTERVAL is invalid"):
            settings.load_settings({"SECRETS_AGENT_WATCH_INTERVAL": text})
    else:
        got = settings.load_settings({"SECRETS_AGENT_WATCH_INTERVAL": text})
        assert got.watch_interval == expected


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
    if expected is None:
        with pytest.raises(ConfigError, match="SECRETS_AGENT_OVERRIDE"):
            settings.load_settings(PREFIX | {"SECRETS_AGENT_OVERRIDE": text})
    else:
        got = settings.load_settings(PREFIX | {"SECRETS_AGENT_OVERRIDE": text})
        assert got.override is expected


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


@given(
    st.dictionaries(
        st.sampled_from(settings.VARIABLES), st.text(max_size=12), max_size=len(settings.VARIABLES)
    )
)
def test_any_text_is_a_value_or_one_config_error_naming_its_variable(
    environ: dict[str, str],
) -> None:
    try:
        settings.load_settings(environ)
    except ConfigError as exc:
        assert exc.exit_code == 78
        named = [v for v in settings.VARIABLES if exc.message.startswith(v + " ")]
        assert named and named[0] in environ
        assert "\n" not in exc.line()


def test_loading_settings_imports_no_pydantic_and_no_botocore() -> None:
    code = (
        "import sys\n"
        "from secrets_agent.core.settings import load_settings\n"
        "s = load_settings({'PARAMETER_STORE_PREFIX': '/a', 'SECRETS_AGENT_TIMEOUT': '5',"
        " 'SECRETS_AGENT_WATCH_INTERVAL': '60', 'SECRETS_AGENT_LOG_LEVEL': 'debug'})\n"
        "assert s.timeout == 5.0 and s.supervise, s\n"
        "heavy = ('pydantic', 'pydantic_settings', 'botocore')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
