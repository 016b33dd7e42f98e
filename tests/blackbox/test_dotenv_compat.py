"""``env --format dotenv --reveal`` output read back by Ruby's dotenv and python-dotenv, and
``env --format shell --reveal`` output read back by bash ``eval``.

Every value either comes back exactly from BOTH dotenv readers, or rendering refuses it with a
DataError naming the variable (never a silently different value).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Record, Secret
from secrets_agent.output.render import render_env

HOSTILE = {
    "NEWLINE": "line1\nline2\n",
    "CRLF": "a\r\nb\rc",
    "DOUBLE_QUOTE": 'say "hi"',
    "SINGLE_QUOTE": "it's",
    "BOTH_QUOTES": 'it\'s "quoted"',
    "DOLLAR_ALONE": "$",
    "DOLLAR_END": "cost 5$",
    "DOLLAR_SPACE": "a $ b",
    "DOLLARS": "pa$$word",
    "BCRYPT": "$2a$10$N9qo8uLOickgx2ZMRZoMye",
    "BRACED_NO_CLOSE": "${HOME",
    "COMMAND": "$(id)",
    "BACKTICKS": "`id`",
    "BACKSLASH_N": "back\\nslash",
    "BACKSLASH_R": "c:\\repo",
    "BACKSLASH": "a\\b",
    "BACKSLASHES": "a\\\\b",
    "BACKSLASH_QUOTE": 'x\\"y',
    "BACKSLASH_NEWLINE": "x\\\ny",
    "EQUALS": "a=b==c",
    "HASH": "a # not a comment",
    "HASH_START": "#start",
    "SPACES": "  leading and trailing  ",
    "TAB": "\ttab\t",
    "NON_ASCII": "héllo wörld ✓ 日本 \U0001f512",
    "EMPTY": "",
    "PEM": "-----BEGIN KEY-----\nMIIB+/=\nabc\n-----END KEY-----\n",
    "JSON_ESCAPED": '{"private_key": "-----BEGIN-----\\nabc\\n-----END-----\\n"}',
    "URL": "postgres://u:p%40ss@db:5432/app?sslmode=require",
    "EXPORT_LIKE": "export X=1",
}
# Values no dotenv text can give back unchanged to both readers.
UNREPRESENTABLE = {
    "BRACED": "${HOME}",  # python-dotenv expands ${...} in every quoting style
    "BRACED_DEFAULT": "x${NOPE:-y}z",
    "BACKSLASH_N_AND_QUOTE": "it's back\\n",
    "DOLLAR_NAME_AND_NEWLINE": "$HOME\nx",
    "TRAILING_BACKSLASH": "ends\\",
}

RUBY_READER = """
require "dotenv"
require "json"
# Dotenv.load's reader: Dotenv::Environment (2.x); Dotenv.parse where it exists (3.x).
env = Dotenv.respond_to?(:parse) ? Dotenv.parse(ARGV[0]) : Dotenv::Environment.new(ARGV[0], true)
print JSON.generate(env.to_h)
"""


def _records(values: dict[str, str]) -> list[Record]:
    return [
        Record(name=n, value=Secret(v), source="ssm", source_name=f"/app/{n.lower()}", version="1")
        for n, v in values.items()
    ]


def _ruby_available() -> bool:
    if shutil.which("ruby") is None:
        return False
    probe = subprocess.run(
        ["ruby", "-e", 'require "dotenv"'], capture_output=True, check=False, timeout=60
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def ruby_dotenv() -> None:
    """Ruby's dotenv is one of the two readers under test: CI installs it, so there its
    absence is a failure, not a skip."""
    if _ruby_available():
        return
    if os.environ.get("CI"):
        pytest.fail("Ruby's dotenv is missing: .ci/run must install ruby-dotenv")
    pytest.skip("Ruby's dotenv is not installed (apt-get install ruby-dotenv)")


needs_ruby_dotenv = pytest.mark.usefixtures("ruby_dotenv")


def read_with_ruby(text: str, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "out.env"
    path.write_text(text, encoding="utf-8")
    script = tmp_path / "read.rb"
    script.write_text(RUBY_READER)
    proc = subprocess.run(
        ["ruby", str(script), str(path)],
        capture_output=True,
        check=True,
        timeout=60,
        # Ruby's dotenv 2.8 and later read "\n" in double quotes as backslash-n unless
        # DOTENV_LINEBREAK_MODE=legacy (2.4, Debian's, always expands it): multi-line values
        # need it there. The variable changes nothing else, and nothing at all in 2.4.
        env={
            "LANG": "C.UTF-8",
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent-home",
            "DOTENV_LINEBREAK_MODE": "legacy",
        },
    )
    data: dict[str, str] = json.loads(proc.stdout.decode("utf-8"))
    return data


def read_with_python(text: str) -> dict[str, str | None]:
    from dotenv import dotenv_values

    return dict(dotenv_values(stream=io.StringIO(text)))


@needs_ruby_dotenv
def test_hostile_values_read_back_by_ruby_dotenv(tmp_path: Path) -> None:
    text = render_env(_records(HOSTILE), fmt="dotenv", reveal=True)
    assert read_with_ruby(text, tmp_path) == HOSTILE


def test_hostile_values_read_back_by_python_dotenv() -> None:
    text = render_env(_records(HOSTILE), fmt="dotenv", reveal=True)
    assert read_with_python(text) == HOSTILE


def test_plain_values_are_double_quoted_with_escaped_newlines() -> None:
    text = render_env(_records({"A": "x\ny", "B": 'q"'}), fmt="dotenv", reveal=True)
    assert text == 'A="x\\ny"\nB="q\\""\n'


@pytest.mark.parametrize("name", sorted(UNREPRESENTABLE))
def test_unrepresentable_value_is_refused_naming_the_variable(name: str) -> None:
    value = UNREPRESENTABLE[name]
    with pytest.raises(DataError) as info:
        render_env(_records({name: value, "OTHER": "fine"}), fmt="dotenv", reveal=True)
    assert name in info.value.message
    assert "--format json" in info.value.hint
    assert value not in info.value.line()


@pytest.mark.parametrize("name", sorted(UNREPRESENTABLE))
def test_unrepresentable_value_is_fine_when_masked(name: str) -> None:
    text = render_env(_records({name: UNREPRESENTABLE[name]}), fmt="dotenv", reveal=False)
    assert text == f'{name}="***"\n'


def _random_values(seed: int, count: int) -> dict[str, str]:
    alphabet = [*"aZ09_ $${}()`'\"\\\n\r\t#=:-.!é✓\x0b\x0c\x1c\x85\u2028\ufeff", "\\n", "${", "$("]
    rng = random.Random(seed)
    return {
        f"V{i}": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for i in range(count)
    }


@given(st.text().filter(lambda v: "\x00" not in v))
@example("\\")
@example("${}")
@example("$\u212a")  # Kelvin sign: Ruby's case-insensitive [A-Z] may take it for a name
def test_any_value_is_refused_or_read_back_by_python_dotenv(value: str) -> None:
    try:
        text = render_env(_records({"V": value}), fmt="dotenv", reveal=True)
    except DataError:
        return
    assert read_with_python(text) == {"V": value}


def _render_representable(values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Render every value the renderer accepts; return the text and the accepted values."""
    accepted: dict[str, str] = {}
    for name, value in values.items():
        try:
            render_env(_records({name: value}), fmt="dotenv", reveal=True)
        except DataError:
            continue
        accepted[name] = value
    return render_env(_records(accepted), fmt="dotenv", reveal=True), accepted


@needs_ruby_dotenv
def test_random_values_either_refused_or_read_back_by_both(tmp_path: Path) -> None:
    values = _random_values(seed=20261126, count=3000)
    text, accepted = _render_representable(values)
    assert len(accepted) > len(values) // 4  # the test exercises the readers, not only refusals
    assert read_with_python(text) == accepted
    assert read_with_ruby(text, tmp_path) == accepted


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_shell_output_survives_bash_eval(tmp_path: Path) -> None:
    values = {**HOSTILE, **UNREPRESENTABLE, "SEMI": "x; touch pwned", "QUOTE_ESCAPE": "'\"'\"'"}
    values.update(_random_values(seed=7, count=300))
    out = tmp_path / "out"
    out.write_text(render_env(_records(values), fmt="shell", reveal=True), encoding="utf-8")
    script = (
        'eval "$(cat out)"\n'
        "python3 -c 'import json, os, sys; "
        "json.dump({k: os.environ[k] for k in sys.argv[1:]}, sys.stdout)' "
        + " ".join(sorted(values))
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path)},
    )
    assert json.loads(proc.stdout) == values
    assert not (tmp_path / "pwned").exists()
