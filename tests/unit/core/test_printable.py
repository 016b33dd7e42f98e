"""secrets_agent.core.printable: the one escaping function for stdout and stderr, and the logger's
line cap."""

from __future__ import annotations

import io
import json

from hypothesis import example, given
from hypothesis import strategies as st

from secrets_agent.core.printable import MAX_LINE, capped, printable
from secrets_agent.output.logs import Logger

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@given(ANY_TEXT)
@example("a\nb\r\tc\x1b[2J\x85\x9b\u2028\u2029\u202e\u2066\u200e\ufeff\U000e0001\udcff")
def test_escaped_text_is_printable_idempotent_and_valid_inside_json(text: str) -> None:
    out = printable(text)
    assert all(ch == " " or ch.isprintable() for ch in out)
    assert printable(out) == out
    assert out.splitlines() == [out] or out == ""
    # Inside a JSON string the escapes decode back to the original text.
    quoted = json.dumps(text, ensure_ascii=False)
    assert json.loads(printable(quoted)) == text


def test_printable_text_is_unchanged() -> None:
    for text in ("plain", "ä é 中文 😀", "back\\slash", "tab\\t as text"):
        assert printable(text) == text


def test_capped_lines_stay_under_the_limit() -> None:
    line = "é" * MAX_LINE
    out = capped(line)
    assert len(out.encode()) <= MAX_LINE
    assert out.endswith("characters left out)")
    assert capped("short") == "short"


def test_logger_shortens_long_lists_and_mappings_and_says_how_many() -> None:
    for fmt in ("json", "text"):
        stream = io.StringIO()
        log = Logger(fmt=fmt, stream=stream)
        names = [f"NAME_{i:05d}" for i in range(5000)]
        log.info("e", names=names, versions={n: "1" for n in names}, count=5000)
        line = stream.getvalue()
        assert line.count("\n") == 1
        assert len(line.encode()) <= MAX_LINE + 1
        if fmt == "json":
            event = json.loads(line)
            assert event["names"] == names[: len(event["names"])]
            assert len(event["names"]) + event["names_omitted"] == 5000
            assert len(event["versions"]) + event["versions_omitted"] == 5000
            assert event["count"] == 5000


def test_logger_shortens_a_huge_string_before_any_list() -> None:
    stream = io.StringIO()
    Logger(fmt="json", stream=stream).info("e", hint="x" * 50_000, names=["A", "B"])
    event = json.loads(stream.getvalue())
    assert event["hint"].endswith("(48976 characters left out)")
    assert event["names"] == ["A", "B"] and "names_omitted" not in event


def test_an_error_line_is_one_escaped_line_whatever_its_message_quotes() -> None:
    from secrets_agent.core.errors import DataError

    error = DataError(
        "key 'a\nsecrets-agent: ok\x1b[2J\u2028' " + "x" * 20_000, hint="rename\u202e it"
    )
    line = error.line()
    assert line.splitlines() == [line]
    assert "\x1b" not in line and "\u202e" not in line
    assert line.startswith("secrets-agent: bad secret data: key 'a\\nsecrets-agent: ok\\u001b[2J")
    assert len(line.encode()) <= MAX_LINE
