"""Hostile input: any string through the name rule and the reference parser, values at the
services' size limits, NUL bytes, an environment too large for execve, and JSON secrets that
are deeply nested, huge, or not JSON.

The rule everywhere: a valid variable, or a clear error with the contract's exit code and one
stderr line; never a traceback, never a started command with a partial environment.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from secrets_agent.aws.secrets_manager_values import expand, scalar_of
from secrets_agent.core.errors import DataError, NotFoundError
from secrets_agent.core.model import Item, Secret
from secrets_agent.core.naming import is_protected, records_from_items, variable_name
from secrets_agent.core.references import (
    AesdkRef,
    SecretRef,
    SsmRef,
    find_references,
    parse_reference,
)
from secrets_agent.output.logs import Logger
from secrets_agent.process.fastpath import looks_like_reference
from tests.conftest import AgentRun, base_env, error_line, run_agent
from tests.support.moto_server import MotoServer

VALID_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*\Z")
# Any code point, lone surrogates included: os.environ holds them for non-UTF-8 bytes.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
SSM_NAME_CHARS = "abcXYZ019_.-/"
REF_PREFIXES = ("ssm:", "secretsmanager:", "aesdk:", "arn:aws:ssm:", "arn:aws:secretsmanager:")


def rule(key: str) -> str:
    """The contract's name rule, written independently of secrets_agent.core.naming"""
    out, run = [], False
    for ch in key:
        if ("A" <= ch <= "Z") or ("a" <= ch <= "z") or ("0" <= ch <= "9"):
            out.append(ch)
            run = False
        elif not run:
            out.append("_")
            run = True
    return "".join(out).strip("_").upper()


# -- the name rule ------------------------------------------------------------------------


@given(ANY_TEXT)
@example("")
@example("/")
@example("1password")
@example("-._/")
@example("\udcff")
@example("ä.b")
def test_name_rule_gives_a_valid_variable_or_a_data_error(key: str) -> None:
    try:
        name = variable_name(key)
    except DataError as exc:
        assert exc.exit_code == 65
        assert exc.line().startswith("secrets-agent: bad secret data: ")
        expected = rule(key)
        assert expected == "" or expected[0].isdigit()
        return
    assert VALID_NAME.match(name), name
    assert name == rule(key)
    assert variable_name(name) == name  # a variable name maps to itself


@given(st.lists(st.text(SSM_NAME_CHARS, min_size=1, max_size=12), max_size=12))
def test_prefix_items_become_unique_settable_variables_or_a_data_error(keys: list[str]) -> None:
    items = [
        Item(source="ssm", source_name=f"/app/{k}", value=Secret("v"), version="1", key=k)
        for k in keys
    ]
    try:
        records = records_from_items(items)
    except DataError as exc:
        assert exc.exit_code == 65
        return
    names = [r.name for r in records]
    assert len(names) == len(set(names)) == len(keys)
    for name in names:
        assert VALID_NAME.match(name) and not is_protected(name)


# -- the reference parser -----------------------------------------------------------------


@given(st.one_of(ANY_TEXT, st.builds(lambda p, t: p + t, st.sampled_from(REF_PREFIXES), ANY_TEXT)))
@example("ssm:")
@example("ssm::")
@example("ssm:/a:b:c")
@example("secretsmanager:")
@example("secretsmanager:a:b:c:d:e")
@example("aesdk:")
@example("aesdk:!!!")
@example("arn:aws:ssm:us-east-1:123456789012:parameter")
@example("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
@example("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/a/b:3")
@example("ssm:\udcff")
def test_reference_parser_gives_a_reference_nothing_or_a_data_error(value: str) -> None:
    try:
        ref = parse_reference(value)
    except DataError as exc:
        assert exc.exit_code == 65
        assert looks_like_reference(value)
        return
    if value.startswith(("ssm:", "secretsmanager:", "aesdk:")):
        assert ref is not None, "a reference-shaped value must never pass on as a literal"
    if not looks_like_reference(value):
        assert ref is None
    assert ref is None or isinstance(ref, (SsmRef, SecretRef, AesdkRef))


@given(st.dictionaries(st.text("ABC_", min_size=1, max_size=5), ANY_TEXT, max_size=6))
def test_find_references_over_any_environment(environ: dict[str, str]) -> None:
    try:
        found = find_references(environ)
    except DataError as exc:
        assert any(var in exc.message for var in environ)  # names the variable
        return
    for var, ref in found.items():
        assert looks_like_reference(environ[var])
        assert ref is not None


# -- Secrets Manager JSON shaping ---------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON.map(json.dumps), ANY_TEXT))
def test_any_secret_text_expands_or_is_a_data_error(text: str) -> None:
    log = Logger(level="error")
    try:
        out = expand(text, name="app/x", key="x", log=log)
    except DataError as exc:
        assert exc.exit_code == 65
        return
    if not out:  # only an empty object gives no variable (and a warning)
        assert json.loads(text) == {}
    for _key, _source, value in out:
        assert isinstance(value, str)


@given(st.one_of(JSON.map(json.dumps), ANY_TEXT), st.text(max_size=8))
def test_any_secret_text_under_a_json_key_is_a_value_or_a_clear_error(text: str, key: str) -> None:
    try:
        value = scalar_of(text, key, origin="reference in variable X")
    except (DataError, NotFoundError) as exc:
        assert exc.exit_code in (65, 66)
        return
    assert isinstance(value, str)


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_a_deeply_nested_json_object_is_a_data_error() -> None:
    with pytest.raises(DataError):
        expand(deep_object(10_000), name="app/deep", key="deep", log=Logger(level="error"))


def test_a_deeply_nested_json_object_under_a_key_is_a_data_error() -> None:
    with pytest.raises(DataError):
        scalar_of(deep_object(10_000), "a", origin="reference in variable X")


# -- black-box: the real entrypoint against moto ------------------------------------------


def agent(tmp_path: Path, moto: MotoServer, **settings: str) -> AgentRun:
    env = base_env(moto.url)
    env["SECRETS_AGENT_LOG_FORMAT"] = "json"
    env.update(settings)
    return run_agent(tmp_path, env)


def assert_clear_failure(run: AgentRun, code: int, *, mentions: str = "") -> str:
    assert run.child_env is None, "the command started"
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if '"level":"error"' in line]
    assert len(errors) == 1 and errors[0] == run.stderr.splitlines()[-1], run.stderr
    line = error_line(run.stderr)
    assert line.startswith("secrets-agent: ") and mentions in line, run.stderr
    return line


AWKWARD = "k=v\n'\"$HOME`x`\\ \t é ü 日本 \r\n-----END-----  "


def sized(size: int, filler: str = "x") -> str:
    """``size`` UTF-8 bytes that start with every awkward character."""
    head = AWKWARD
    rest = size - len(head.encode())
    return head + filler * (rest // len(filler.encode()))


@pytest.mark.parametrize(
    ("tier", "value"),
    [
        ("Standard", sized(4096)),
        ("Standard", sized(4096, "é")),  # 4 KB of bytes, half as many characters
        ("Advanced", sized(8192)),
        ("Advanced", sized(8192, "日")),
    ],
    ids=["standard-4k", "standard-4k-utf8", "advanced-8k", "advanced-8k-utf8"],
)
def test_values_at_ssm_size_limits_pass_byte_for_byte(
    tmp_path: Path, moto: MotoServer, boto_client: Any, tier: str, value: str
) -> None:
    assert len(value.encode()) <= (4096 if tier == "Standard" else 8192)
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/h/app/big", Value=value, Type="SecureString", Tier=tier)
    ssm.put_parameter(Name="/h/ref/big", Value=value, Type="SecureString", Tier=tier)
    run = agent(tmp_path, moto, PARAMETER_STORE_PREFIX="/h/app", REF="ssm:/h/ref/big")
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["BIG"] == value
    assert run.child_env["REF"] == value


def test_a_64k_secret_and_a_2000_key_json_secret_pass_whole(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    sm = boto_client("secretsmanager")
    blob = sized(65_536)
    sm.create_secret(Name="h/app/blob", SecretString=blob)
    many = {f"key_{i:04d}": f"value {i} \n '$'" for i in range(2000)}
    text = json.dumps(many)
    assert len(text) < 65_536
    sm.create_secret(Name="h/app/many", SecretString=text)
    run = agent(tmp_path, moto, SECRETS_MANAGER_PREFIX="h/app")
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["BLOB"] == blob
    for key, value in many.items():
        assert run.child_env[f"MANY_{key.upper()}"] == value


@pytest.mark.parametrize("where", ["ssm-prefix", "ssm-ref", "sm-prefix", "sm-json-key", "sm-ref"])
def test_a_value_with_a_nul_byte_is_a_data_error(
    tmp_path: Path, moto: MotoServer, boto_client: Any, where: str
) -> None:
    nul = "before\x00after"
    ssm, sm = boto_client("ssm"), boto_client("secretsmanager")
    ssm.put_parameter(Name="/h/app/ok", Value="fine", Type="SecureString")
    settings = {"PARAMETER_STORE_PREFIX": "/h/app"}
    if where == "ssm-prefix":
        ssm.put_parameter(Name="/h/app/bad", Value=nul, Type="SecureString")
    elif where == "ssm-ref":
        ssm.put_parameter(Name="/h/ref/bad", Value=nul, Type="SecureString")
        settings["BAD"] = "ssm:/h/ref/bad"
    elif where == "sm-prefix":
        sm.create_secret(Name="h/sm/bad", SecretString=nul)
        settings["SECRETS_MANAGER_PREFIX"] = "h/sm"
    elif where == "sm-json-key":
        sm.create_secret(Name="h/sm/db", SecretString=json.dumps({"user": "u", "password": nul}))
        settings["SECRETS_MANAGER_PREFIX"] = "h/sm"
    else:
        sm.create_secret(Name="h/ref/bad", SecretString=nul)
        settings["BAD"] = "secretsmanager:h/ref/bad"
    run = agent(tmp_path, moto, **settings)
    line = assert_clear_failure(run, 65, mentions="NUL")
    assert "before" not in run.stderr and "after" not in line


@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_an_environment_too_large_for_execve_is_one_clear_line(
    tmp_path: Path, moto: MotoServer, boto_client: Any, mode: str
) -> None:
    """270 advanced-tier parameters of 8 KB: 2.2 MB, past the kernel's 2 MB ARG_MAX.
    Exec mode (execve) and supervise mode (posix_spawn) both give 126 and one line."""
    ssm = boto_client("ssm")
    for i in range(270):
        ssm.put_parameter(
            Name=f"/h/huge/key_{i:03d}", Value=sized(8192), Type="SecureString", Tier="Advanced"
        )
    settings = {"PARAMETER_STORE_PREFIX": "/h/huge"}
    if mode == "supervise":
        settings["SECRETS_AGENT_WATCH_INTERVAL"] = "60"
    run = agent(tmp_path, moto, **settings)
    line = assert_clear_failure(run, 126)
    assert "exceed the kernel's limit" in line or "Argument list too long" in line, line
    assert AWKWARD not in run.stderr


@pytest.mark.parametrize(
    ("secret", "ref_key", "code"),
    [
        (deep_object(10_000), "a", 65),  # nested object under a key
        ("[" * 10_000 + "]" * 10_000, "a", 65),  # not an object
        ('{"a": {"b": 1}}', "a", 65),
        ('{"a": [1]}', "a", 65),
        ('{"a": null}', "a", 65),
        ("{not json", "a", 65),
        ('{"a": 1, "a": 2}', "a", 65),  # duplicate key
        ('{"b": 1}', "a", 66),
    ],
    ids=["deep", "deep-array", "nested", "array", "null", "not-json", "duplicate", "missing"],
)
def test_json_references_into_hostile_secrets_fail_clearly(
    tmp_path: Path, moto: MotoServer, boto_client: Any, secret: str, ref_key: str, code: int
) -> None:
    boto_client("secretsmanager").create_secret(Name="h/ref/json", SecretString=secret)
    run = agent(tmp_path, moto, VALUE=f"secretsmanager:h/ref/json:{ref_key}")
    assert_clear_failure(run, code)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("{not json", {"THING": "{not json"}),
        ("[1, 2]", {"THING": "[1, 2]"}),
        ('"quoted"', {"THING": '"quoted"'}),
        ("123", {"THING": "123"}),
        (
            '{"n": 1.50, "t": true, "s": "x"}',
            {"THING_N": "1.50", "THING_T": "true", "THING_S": "x"},
        ),
    ],
    ids=["not-json", "array", "json-string", "number", "object"],
)
def test_non_object_secrets_under_a_prefix_are_one_value(
    tmp_path: Path, moto: MotoServer, boto_client: Any, secret: str, expected: dict[str, str]
) -> None:
    boto_client("secretsmanager").create_secret(Name="h/app/thing", SecretString=secret)
    run = agent(tmp_path, moto, SECRETS_MANAGER_PREFIX="h/app")
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert {k: run.child_env.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    "secret",
    [deep_object(10_000), '{"a": {"b": 1}}', '{"a": null}'],
    ids=["deep", "nested", "null"],
)
def test_nested_json_under_a_prefix_is_a_data_error(
    tmp_path: Path, moto: MotoServer, boto_client: Any, secret: str
) -> None:
    boto_client("secretsmanager").create_secret(Name="h/app/thing", SecretString=secret)
    run = agent(tmp_path, moto, SECRETS_MANAGER_PREFIX="h/app")
    assert_clear_failure(run, 65)


@pytest.mark.parametrize(
    "value",
    [
        "aesdk:AAAA",
        "aesdk:" + base64.b64encode(b"\x02\x05" + bytes(range(256)) * 4).decode(),
        "aesdk:" + base64.b64encode(bytes(60_000)).decode(),
        "aesdk:====",
        "aesdk:not base64!",
    ],
    ids=["short", "garbage-v2-header", "huge-zeros", "padding", "not-base64"],
)
def test_a_malformed_aesdk_value_is_a_data_error(
    tmp_path: Path, moto: MotoServer, value: str
) -> None:
    run = agent(
        tmp_path,
        moto,
        TOKEN=value,
        SECRETS_AGENT_KMS_KEY_ARNS="arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    )
    assert_clear_failure(run, 65)


# -- hypothesis through the real entrypoint (few examples: each one starts a process) -----


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(SSM_NAME_CHARS, min_size=1, max_size=20).filter(lambda s: "//" not in s))
def test_any_parameter_name_gives_its_variable_or_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, key: str
) -> None:
    moto.reset()
    name = "/hyp/app/" + key.strip("/")
    if name.endswith("/") or name == "/hyp/app/":
        return
    boto_client("ssm").put_parameter(Name=name, Value="the value", Type="SecureString")
    run = agent(tmp_path, moto, PARAMETER_STORE_PREFIX="/hyp/app")
    expected = rule(name.removeprefix("/hyp/app/"))
    if expected and not expected[0].isdigit() and not is_protected(expected):
        assert run.returncode == 0, run.stderr
        assert run.child_env is not None and run.child_env[expected] == "the value"
    else:
        assert_clear_failure(run, 65)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(("ssm:", "secretsmanager:")), st.text(st.characters(codec="utf-8"), max_size=40)
)
def test_any_reference_to_nothing_fails_clearly(
    tmp_path: Path, moto: MotoServer, prefix: str, rest: str
) -> None:
    moto.reset()
    if "\x00" in rest:
        return  # an environment cannot hold NUL at all
    run = agent(tmp_path, moto, VALUE=prefix + rest)
    assert_clear_failure(run, run.returncode)
    assert run.returncode in (65, 66), run.stderr
