"""render_env and render_check: masking, formats, and no value in check output."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_agent.core.model import Record, Secret, SourceKind
from secrets_agent.output.render import MASK, render_check, render_env

VALUES = {
    "SECRET_KEY_BASE": "s3cr3t-key-base",
    "DATABASE_URL": "postgres://app:hunter2@db/app",
    "MULTI": "line1\nline2",
    "QUOTE": "it's",
}


def records(values: dict[str, str], *, source: SourceKind = "ssm") -> list[Record]:
    return [
        Record(
            name=name,
            value=Secret(value),
            source=source,
            source_name=f"/kptboard/prod/{name.lower()}",
            version="4",
        )
        for name, value in values.items()
    ]


@pytest.mark.parametrize("fmt", ["json", "dotenv", "shell"])
def test_values_are_masked_without_reveal(fmt: str) -> None:
    out = render_env(records(VALUES), fmt=fmt, reveal=False)
    for value in VALUES.values():
        assert value not in out
    for part in ("s3cr3t", "hunter2", "line1", "it's"):
        assert part not in out
    for name in VALUES:
        assert name in out
    assert out.count(MASK) == len(VALUES)


def test_json_masked_and_revealed() -> None:
    assert json.loads(render_env(records(VALUES), fmt="json", reveal=False)) == {
        name: MASK for name in VALUES
    }
    assert json.loads(render_env(records(VALUES), fmt="json", reveal=True)) == VALUES


def test_json_is_one_object_even_when_empty() -> None:
    assert json.loads(render_env([], fmt="json", reveal=True)) == {}


@pytest.mark.parametrize("fmt", ["dotenv", "shell"])
def test_empty_line_formats_print_nothing(fmt: str) -> None:
    assert render_env([], fmt=fmt, reveal=True) == ""


def test_dotenv_and_shell_lines_are_sorted_by_name() -> None:
    dotenv = render_env(records(VALUES), fmt="dotenv", reveal=False).splitlines()
    assert [line.split("=", 1)[0] for line in dotenv] == sorted(VALUES)
    shell = render_env(records(VALUES), fmt="shell", reveal=False).splitlines()
    assert shell == [f"export {name}='***'" for name in sorted(VALUES)]


def test_shell_quotes_a_single_quote() -> None:
    out = render_env(records({"Q": "a'b"}), fmt="shell", reveal=True)
    assert out == "export Q='a'\"'\"'b'\n"


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
        st.text(min_size=1).filter(lambda v: "\x00" not in v),
        max_size=5,
    )
)
def test_json_reveal_round_trips_any_value(values: dict[str, str]) -> None:
    assert json.loads(render_env(records(values), fmt="json", reveal=True)) == values


def test_check_lists_name_source_source_name_version() -> None:
    recs = [
        Record("SECRET_KEY_BASE", Secret("v1"), "ssm", "/kptboard/prod/secret_key_base", "12"),
        Record("DB_PASSWORD", Secret("v2"), "secretsmanager", "kptboard/prod/db:password", "0f3c"),
        Record("RAILS_ENV", Secret("production"), "environment", "RAILS_ENV"),
    ]
    lines = render_check(recs).splitlines()
    assert [line.split() for line in lines] == [
        ["DB_PASSWORD", "secretsmanager", "kptboard/prod/db:password", "0f3c"],
        ["RAILS_ENV", "environment", "RAILS_ENV", "-"],
        ["SECRET_KEY_BASE", "ssm", "/kptboard/prod/secret_key_base", "12"],
    ]
    # Columns are aligned.
    assert len({line.index(line.split()[1]) for line in lines}) == 1
    assert "production" not in render_check(recs)


def test_check_of_nothing_is_empty() -> None:
    assert render_check([]) == ""


@given(st.text(), st.text())
def test_check_output_does_not_depend_on_the_value(one: str, other: str) -> None:
    assert render_check(records({"SOME_NAME": one})) == render_check(records({"SOME_NAME": other}))
    assert render_check(records({"SOME_NAME": one})).split() == [
        "SOME_NAME",
        "ssm",
        "/kptboard/prod/some_name",
        "4",
    ]
