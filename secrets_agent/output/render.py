"""Render ``env`` and ``check`` output. Values appear only with ``reveal``.

``check`` shows names, source names and versions that whoever writes a parameter or a JSON key
chooses: each cell goes through ``secrets_agent.core.printable.printable``, so that one variable is
one row.
``env`` prints names (valid variable names, nothing to escape) and, with ``--reveal``, values
exactly as the command receives them; in JSON, a lone surrogate (a byte that was not UTF-8)
is written as its ``\\uXXXX`` escape so that the output stays UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Record, Secret
from secrets_agent.core.printable import printable

if TYPE_CHECKING:
    from secrets_agent.core.settings import Settings

MASK = "***"

# python-dotenv expands ``${NAME}`` and ``${NAME:-default}`` in every quoting style, with no escape.
_PY_INTERPOLATION = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")
# Ruby's dotenv (2.x) expands ``$NAME``, ``${NAME}`` and runs ``$(cmd)`` in double quotes;
# python-dotenv reads ``\$`` as two characters, so no escape of ``$`` works for both. A ``$``
# is safe in double quotes only when followed by one of these (or by nothing).
_SAFE_AFTER_DOLLAR = frozenset(" \t\n\r!\"#$%&')*+,-./:;<=>?@[\\]^`|}~")
# Ruby's dotenv turns ``\n`` / ``\r`` into a newline / CR before it unescapes ``\\``, and drops the
# backslash of ``\$``: a backslash followed by n, r or $ cannot be double-quoted for both readers.
_RUBY_BACKSLASH = re.compile(r"\\[nr$]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class DotenvUnrepresentable(ValueError):
    """A value that Ruby's dotenv and python-dotenv cannot both read back unchanged."""


def _double_quotable(value: str) -> bool:
    if _RUBY_BACKSLASH.search(value):
        return False
    return all(value[i + 1] in _SAFE_AFTER_DOLLAR for i, ch in enumerate(value[:-1]) if ch == "$")


def _single_quotable(value: str) -> bool:
    # Ruby's dotenv reads single quotes verbatim; python-dotenv decodes \\ and \'. Neither
    # reader takes a newline or CR inside single quotes.
    return not any(c in value for c in "'\n\r") and "\\\\" not in value


def _dotenv_quote(value: str) -> str:
    """A dotenv value that Ruby's dotenv and python-dotenv both read back unchanged.

    Double quotes with ``\\``, ``\"``, ``\n`` and ``\r`` escaped when they suffice; else single
    quotes (verbatim in both readers); else DotenvUnrepresentable. Ruby's dotenv 2.8 and later
    expand the ``\\n`` escape only with ``DOTENV_LINEBREAK_MODE=legacy``.
    """
    if value.endswith("\\") or _PY_INTERPOLATION.search(value):
        raise DotenvUnrepresentable
    if _double_quotable(value):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
        return '"' + escaped + '"'
    if _single_quotable(value):
        return "'" + value + "'"
    raise DotenvUnrepresentable


def _shell_quote(value: str) -> str:
    """Single-quoted POSIX shell word: safe to ``eval`` whatever the value holds."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render_env(records: Sequence[Record], *, fmt: str, reveal: bool) -> str:
    ordered = sorted(records, key=lambda r: r.name)
    values = {r.name: (r.value.reveal() if reveal else MASK) for r in ordered}
    if fmt == "json":
        text = json.dumps(values, ensure_ascii=False, indent=2, sort_keys=True)
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"
    lines = []
    for name, value in values.items():
        if fmt == "shell":
            lines.append(f"export {name}={_shell_quote(value)}")
        else:
            lines.append(f"{name}={_dotenv_value(name, value)}")
    return "".join(line + "\n" for line in lines)


def _dotenv_value(name: str, value: str) -> str:
    try:
        return _dotenv_quote(value)
    except DotenvUnrepresentable:
        raise DataError(
            f"variable {name} holds a value that dotenv readers cannot read back unchanged "
            "(a ${...}, a $ before a name or '(', a backslash before n, r or $, "
            "or a trailing backslash)",
            hint="use env --format json or env --format shell for this configuration",
        ) from None


def render_check(
    records: Sequence[Record],
    *,
    files: Mapping[str, str] | None = None,
    layers: bool = False,
    required: Sequence[str] = (),
) -> str:
    """One line per variable: name, source, source name, version. Never a value.

    With ``layers`` (a prefix setting lists several prefixes), a fifth column names the prefix
    each variable was loaded under (``-`` for a reference or a kept variable). A variable
    written to a file (``SECRETS_AGENT_FILES``) ends with ``file PATH``; one listed in
    ``SECRETS_AGENT_REQUIRE`` ends with ``required``.
    """
    files = files or {}
    rows = [
        tuple(printable(cell) for cell in (r.name, r.source, r.source_name, r.version or "-"))
        + ((printable(r.layer or "-"),) if layers else ())
        + ((f"file {printable(files[r.name])}",) if r.name in files else ())
        + (("required",) if r.name in required else ())
        for r in sorted(records, key=lambda r: r.name)
    ]
    if not rows:
        return ""
    # Every column but the last of a row is padded to a common width.
    aligned = 3 + (1 if layers else 0) + (1 if files else 0)
    widths = [max(len(row[i]) for row in rows) for i in range(aligned)]
    return "".join(
        "  ".join(
            f"{cell:<{widths[i]}}" if i < aligned and i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        )
        + "\n"
        for row in rows
    )


def render_check_json(
    records: Sequence[Record],
    *,
    files: Mapping[str, str] | None = None,
    required: Sequence[str] = (),
    prefixes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """``check --format json``: the same rows as a document for CI. Never a value."""
    files = files or {}
    document = {
        "ok": True,
        "exit_code": 0,
        "prefixes": {k: list(v) for k, v in (prefixes or {}).items()},
        "required": list(required),
        "variables": [
            {
                "name": r.name,
                "source": r.source,
                "source_name": r.source_name,
                "version": r.version,
                "layer": r.layer,
                "required": r.name in required,
                "file": files.get(r.name),
            }
            for r in sorted(records, key=lambda r: r.name)
        ],
    }
    text = json.dumps(document, ensure_ascii=False, indent=2)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def render_check_failure(exit_code: int, line: str) -> str:
    """``check --format json`` when a start would fail: its exit code and its one line."""
    text = json.dumps({"ok": False, "exit_code": exit_code, "error": line}, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def render_check_report(
    records: Sequence[Record],
    *,
    environ: Mapping[str, str],
    settings: Settings,
    files: Mapping[str, str],
    fmt: str,
) -> str:
    """``check``'s output: ``records``, plus a row for each required variable that only the
    inherited environment provides; as text (by layer) or JSON."""
    from secrets_agent.core.layers import layered, split_prefixes

    shown = {r.name for r in records}
    rows = (
        *records,
        *(
            Record(name=name, value=Secret(environ[name]), source="environment", source_name=name)
            for name in settings.require
            if name not in shown
        ),
    )
    if fmt == "json":
        prefixes = {
            "PARAMETER_STORE_PREFIX": split_prefixes(settings.parameter_store_prefix),
            "SECRETS_MANAGER_PREFIX": split_prefixes(settings.secrets_manager_prefix),
        }
        return render_check_json(rows, files=files, required=settings.require, prefixes=prefixes)
    layers = layered(settings.parameter_store_prefix, settings.secrets_manager_prefix)
    return render_check(rows, files=files, layers=layers, required=settings.require)
