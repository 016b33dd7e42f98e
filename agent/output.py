"""Render ``env`` and ``check`` output. Values appear only with ``reveal``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent.model import Record

MASK = "***"


def _dotenv_quote(value: str) -> str:
    """Double-quoted dotenv value that Ruby's dotenv and python-dotenv read back unchanged."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "$":
            out.append("\\$")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _shell_quote(value: str) -> str:
    """Single-quoted POSIX shell word: safe to ``eval`` whatever the value holds."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render_env(records: Sequence[Record], *, fmt: str, reveal: bool) -> str:
    ordered = sorted(records, key=lambda r: r.name)
    values = {r.name: (r.value.reveal() if reveal else MASK) for r in ordered}
    if fmt == "json":
        return json.dumps(values, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    lines = []
    for name, value in values.items():
        if fmt == "shell":
            lines.append(f"export {name}={_shell_quote(value)}")
        else:
            lines.append(f"{name}={_dotenv_quote(value)}")
    return "".join(line + "\n" for line in lines)


def render_check(records: Sequence[Record]) -> str:
    """One line per variable: name, source, source name, version. Never a value."""
    rows = [
        (r.name, r.source, r.source_name, r.version or "-")
        for r in sorted(records, key=lambda r: r.name)
    ]
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}\n"
        for row in rows
    )
