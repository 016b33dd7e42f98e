"""The agent's JSON log lines, read back: one way for every test."""

from __future__ import annotations

import json
from typing import Any


def events(
    text: str, name: str | None = None, *, prefix: bool = False, tolerant: bool = False
) -> list[dict[str, Any]]:
    """The JSON events in ``text`` (an agent's stderr), in order; with ``name``, only the events
    of that name (whose name starts with it, with ``prefix``).

    Lines that do not start with ``{`` (a command's own output, the text format) are skipped. A
    line that starts with ``{`` and is not JSON is an error, unless ``tolerant``: for a log
    shared with a command that writes JSON-looking lines of its own, or read while being written.
    """
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if tolerant:
                continue
            raise
        if name is not None:
            got = str(event.get("event", ""))
            if not (got.startswith(name) if prefix else got == name):
                continue
        out.append(event)
    return out


def one_event(text: str, name: str) -> dict[str, Any]:
    """The one event named ``name`` in ``text``; an assertion error if there is none or more."""
    found = events(text, name)
    assert len(found) == 1, text
    return found[0]
