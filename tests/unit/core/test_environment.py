"""environment.merge: precedence, references, kept records, NUL, byte-for-byte values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_agent.core.environment import merge
from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Record, Secret, SourceKind


def rec(
    name: str, value: str, *, source: SourceKind = "ssm", source_name: str | None = None
) -> Record:
    return Record(
        name=name,
        value=Secret(value),
        source=source,
        source_name=source_name or f"/app/{name.lower()}",
        version="3",
    )


INHERITED = {"PATH": "/usr/bin", "DATABASE_URL": "from-image", "DB_REF": "ssm:/app/db"}


def test_loaded_fills_missing_variables_whatever_override() -> None:
    for override in (False, True):
        merged = merge(INHERITED, loaded=[rec("NEW", "n")], references=[], override=override)
        assert merged.env["NEW"] == "n"
        assert [r.name for r in merged.applied] == ["NEW"]
        assert merged.kept == ()


def test_override_false_keeps_the_inherited_value_and_reports_it() -> None:
    merged = merge(
        INHERITED, loaded=[rec("DATABASE_URL", "from-ssm")], references=[], override=False
    )
    assert merged.env["DATABASE_URL"] == "from-image"
    assert merged.applied == ()
    assert len(merged.kept) == 1
    kept = merged.kept[0]
    assert (kept.name, kept.source, kept.source_name, kept.version) == (
        "DATABASE_URL",
        "environment",
        "DATABASE_URL",
        None,
    )
    assert kept.value.reveal() == "from-image"


def test_override_true_replaces_the_inherited_value() -> None:
    merged = merge(
        INHERITED, loaded=[rec("DATABASE_URL", "from-ssm")], references=[], override=True
    )
    assert merged.env["DATABASE_URL"] == "from-ssm"
    assert [r.source_name for r in merged.applied] == ["/app/database_url"]
    assert merged.kept == ()


def test_empty_inherited_value_counts_as_unset_and_is_replaced() -> None:
    merged = merge({"X": ""}, loaded=[rec("X", "loaded")], references=[], override=False)
    assert merged.env["X"] == "loaded"
    assert [r.name for r in merged.applied] == ["X"]
    assert merged.kept == ()


@pytest.mark.parametrize("override", [False, True])
def test_reference_always_replaces_its_own_variable(override: bool) -> None:
    merged = merge(
        INHERITED,
        loaded=[],
        references=[rec("DB_REF", "resolved", source_name="/app/db")],
        override=override,
    )
    assert merged.env["DB_REF"] == "resolved"
    assert [r.name for r in merged.applied] == ["DB_REF"]


@pytest.mark.parametrize("override", [False, True])
def test_reference_wins_over_a_prefix_value_of_the_same_name(override: bool) -> None:
    merged = merge(
        INHERITED,
        loaded=[rec("DB_REF", "from-prefix", source_name="/app/db_ref")],
        references=[rec("DB_REF", "resolved", source_name="/app/db")],
        override=override,
    )
    assert merged.env["DB_REF"] == "resolved"
    assert [(r.name, r.source_name) for r in merged.applied] == [("DB_REF", "/app/db")]
    assert merged.kept == ()


def test_inherited_variables_pass_through_untouched() -> None:
    merged = merge(INHERITED, loaded=[rec("NEW", "n")], references=[], override=True)
    assert {k: v for k, v in merged.env.items() if k != "NEW"} == INHERITED


def test_merge_does_not_mutate_its_input() -> None:
    inherited = dict(INHERITED)
    merge(inherited, loaded=[rec("DATABASE_URL", "x")], references=[], override=True)
    assert inherited == INHERITED


@pytest.mark.parametrize("where", ["loaded", "references"])
def test_nul_in_a_value_is_a_data_error_naming_the_parameter(where: str) -> None:
    bad = rec("TOKEN", "abc\x00def", source_name="/app/token")
    kwargs: dict[str, list[Record]] = {"loaded": [], "references": []}
    kwargs[where] = [bad]
    with pytest.raises(DataError) as info:
        merge({}, override=False, **kwargs)
    assert info.value.exit_code == 65
    assert "/app/token" in info.value.message
    assert "TOKEN" in info.value.message
    assert "abc" not in info.value.line()


def test_nul_in_a_kept_loaded_value_does_not_matter() -> None:
    # The inherited value wins; the loaded one is never used.
    merged = merge({"T": "x"}, loaded=[rec("T", "a\x00")], references=[], override=False)
    assert merged.env["T"] == "x"


HOSTILE = [
    "",
    " lead and trail ",
    "a=b=c",
    "line1\nline2\r\n",
    "quote ' and \" and `x`",
    "$HOME ${PATH} $(id)",
    "back\\slash\\n",
    "héllo ✓ \U0001f512",
    "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
    "x" * 8192,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_values_pass_byte_for_byte(value: str) -> None:
    merged = merge(
        {"DB_REF": "ssm:/x"},
        loaded=[rec("LOADED", value)],
        references=[rec("DB_REF", value)],
        override=False,
    )
    assert merged.env["LOADED"] == value
    assert merged.env["DB_REF"] == value


@given(st.text().filter(lambda v: "\x00" not in v), st.booleans())
def test_any_value_without_nul_passes_unchanged(value: str, override: bool) -> None:
    merged = merge(
        {"OLD": "o"},
        loaded=[rec("OLD", value), rec("NEW", value)],
        references=[],
        override=override,
    )
    assert merged.env["NEW"] == value
    assert merged.env["OLD"] == (value if override else "o")


@pytest.mark.parametrize("value", ["\ud800", "ok \udbff end", "\udfff"])
def test_lone_surrogate_is_a_data_error_not_a_crash_at_exec(value: str) -> None:
    # json.loads('"\\ud800"') gives such a string: a JSON secret can hold one.
    with pytest.raises(DataError) as info:
        merge({}, loaded=[rec("K", value, source_name="app/json:k")], references=[], override=False)
    assert "app/json:k" in info.value.message
    assert "surrogate" in info.value.message


def test_undecodable_inherited_bytes_survive() -> None:
    # os.environ holds undecodable bytes as \udc80-\udcff: they are bytes, not an error.
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    merged = merge({"A": value}, loaded=[rec("B", value)], references=[], override=False)
    assert merged.env["A"] == merged.env["B"] == value
