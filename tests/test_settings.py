"""agent.settings (standard library) must agree with agent.config (pydantic), its reference."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import config
from agent import settings as fast
from agent.errors import ConfigError

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NUMBERS = [
    "0",
    "0.5",
    "1",
    "5.",
    ".5",
    "1e2",
    "1_0",
    "+5",
    " 5 ",
    "05",
    "-1",
    "nan",
    "inf",
    "3600",
    "3600.0",
    "3600.5",
    "86400",
    "86401",
    "999999",
    "0.0000001",
    "x",
    "1.2.3",
]
VALUES = {
    "PARAMETER_STORE_PREFIX": [
        "/app/prod",
        "/app/prod/",
        " /x ",
        "  ",
        "\u00a0",
        "kptboard-rails",
        "",
        "/" + "a" * 2045,
        "/" + "a" * 2046,
        "".join(f"/l{i}" for i in range(16)),
    ],
    "SECRETS_MANAGER_PREFIX": ["app/prod", " ", "", "a b", "a" * 510, "a" * 511],
    "SECRETS_AGENT_OVERRIDE": [
        "true",
        "false",
        "True",
        "YES",
        "no",
        "On",
        "off",
        "1",
        "0",
        " true",
        "2",
        "yes!",
        "",
    ],
    "SECRETS_AGENT_TIMEOUT": NUMBERS,
    "SECRETS_AGENT_WATCH_INTERVAL": NUMBERS,
    "SECRETS_AGENT_STOP_TIMEOUT": NUMBERS,
    "SECRETS_AGENT_ON_CHANGE": ["restart", "exit", "Exit", " exit", "redeploy", "Redeploy ", ""],
    "SECRETS_AGENT_ECS_CLUSTER": ["prod", " prod ", "a_b-1", "a/b", "a" * 255, "a" * 256, ""],
    "SECRETS_AGENT_ECS_SERVICE": ["web", "arn:aws:ecs:us-east-1:1:service/p/web", "a b", ""],
    "SECRETS_AGENT_RESTART_SPREAD": NUMBERS,
    "SECRETS_AGENT_KMS_KEY_ARNS": [ARN, f"{ARN}, {ARN}", " , ", "arn:aws:kms:nope", f"{ARN},x"],
    "SECRETS_AGENT_LOG_FORMAT": ["json", "text", "JSON", ""],
    "SECRETS_AGENT_LOG_LEVEL": ["debug", "info", "warning", "error", "DEBUG", "warn"],
    "SECRETS_AGENT_ALLOW": [
        "DATABASE_URL",
        " DATABASE_URL , RAILS_* ",
        "*",
        "a,b,",
        " , ",
        " ",
        "A-B",
        "A B",
        "[A]",
        "",
    ],
}


def reference_outcome(environ: dict[str, str]) -> object:
    try:
        ref = config.load_settings(environ)
    except ConfigError as exc:
        return ("error", exc.line())
    return {f.name: getattr(ref, f.name) for f in dataclasses.fields(fast.Settings)}


def fast_outcome(environ: dict[str, str]) -> object:
    try:
        got = fast.load_settings(environ)
    except ConfigError as exc:
        return ("error", exc.line())
    return dataclasses.asdict(got)


environments = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(st.sampled_from(values), st.text(max_size=12))
        for name, values in VALUES.items()
    },
)


@settings(max_examples=200, deadline=None)
@given(environments)
def test_agrees_with_the_pydantic_model(environ: dict[str, str]) -> None:
    assert fast_outcome(environ) == reference_outcome(environ)


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in VALUES.items() for v in values]
)
def test_each_listed_value_agrees(name: str, value: str) -> None:
    environ = {name: value}
    assert fast_outcome(environ) == reference_outcome(environ)


def test_defaults_and_field_names_match_the_model() -> None:
    assert dataclasses.asdict(fast.Settings()) == reference_outcome({})
    assert {f.name for f in dataclasses.fields(fast.Settings)} == set(config.Settings.model_fields)


def test_well_formed_values_do_not_import_pydantic() -> None:
    code = (
        "import sys\n"
        "from agent.settings import load_settings\n"
        "s = load_settings({'PARAMETER_STORE_PREFIX': '/a', 'SECRETS_AGENT_TIMEOUT': '5',"
        " 'SECRETS_AGENT_WATCH_INTERVAL': '60', 'SECRETS_AGENT_LOG_LEVEL': 'debug'})\n"
        "assert s.timeout == 5.0 and s.supervise, s\n"
        "heavy = ('pydantic', 'pydantic_settings')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_bad_value_still_gets_the_models_message() -> None:
    with pytest.raises(ConfigError) as info:
        fast.load_settings({"SECRETS_AGENT_TIMEOUT": "-1"})
    assert "SECRETS_AGENT_TIMEOUT" in info.value.line()
