"""Log events to stderr, one per line, as JSON objects or text.

Fields are identifiers (names, sources, versions, counts, timings). A ``Secret`` passed by
mistake renders as ``***``: values never reach this module's output.

Every line goes through ``secrets_agent.core.printable.printable`` (no control, separator or bidi
character
from a name or key reaches the log raw, and a JSON line stays valid JSON) and is kept under
``MAX_LINE`` bytes: Docker splits lines longer than 16 KiB, which breaks a JSON line in two. A
line that would be longer has its strings cut at 1,024 characters, then keeps the first half,
then the first quarter, ... of its longest list or mapping field (``names``), and says how many
entries it left out (``names_omitted``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Literal

from secrets_agent.core.printable import MAX_LINE, printable

Level = Literal["debug", "info", "warning", "error"]
LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_MAX_TEXT = 1024  # a single string field past this is shortened when a line is too long
_KEPT = frozenset({"_aws"})  # never shortened: the embedded metric format's metadata


def _plain(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


_closed = False
_format: Literal["json", "text"] | None = None  # the format of the agent's logger, once made


def current_format() -> Literal["json", "text"] | None:
    """The format the agent's log lines are in (None: no logger was made yet)."""
    return _format


def close() -> None:
    """No log line after this: the one error line is the last thing on stderr, even when a
    source's thread, abandoned by a failed fan-out, finishes and logs afterwards."""
    global _closed
    _closed = True


class Logger:
    """A tiny structured logger. Construct with ``Logger(level=..., fmt=...)``."""

    def __init__(
        self,
        *,
        level: str = "info",
        fmt: Literal["json", "text"] | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        # sys.stderr is None when the agent was started with stderr closed: nothing is logged.
        self.stream: IO[str] | None = stream if stream is not None else sys.stderr
        self.threshold = LEVELS.get(level, 20)
        if fmt is None:
            isatty = getattr(self.stream, "isatty", None)
            fmt = "text" if (isatty is not None and isatty()) else "json"
        self.fmt: Literal["json", "text"] = fmt
        global _format
        _format = fmt

    def enabled(self, level: Level) -> bool:
        return LEVELS[level] >= self.threshold

    def log(self, level: Level, event: str, **fields: object) -> None:
        if not self.enabled(level):
            return
        self.always(level, event, **fields)

    def always(self, level: Level, event: str, **fields: object) -> None:
        """Write the event whatever the level threshold (metric lines:
        ``secrets_agent.output.metrics``)."""
        if self.stream is None or _closed:
            return
        line = self.line(level, event, **fields)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def line(self, level: Level, event: str, **fields: object) -> str:
        """The event as the one line ``always`` writes (escaped, within ``MAX_LINE``)."""
        plain = {k: _plain(v) for k, v in fields.items()}
        line = self._render(level, event, plain)
        if _size(line) > MAX_LINE:
            line = self._shorten(level, event, plain)
        return line

    def _render(self, level: Level, event: str, fields: dict[str, object]) -> str:
        if self.fmt == "json":
            obj: dict[str, object] = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{int(time.time() * 1000) % 1000:03d}Z",
                "level": level,
                "logger": "secrets-agent",
                "event": event,
            }
            obj.update(fields)
            line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        else:
            parts = [f"secrets-agent {level}: {event}"]
            for key, value in fields.items():
                parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
            line = " ".join(parts)
        return printable(line)

    def _shorten(self, level: Level, event: str, fields: dict[str, object]) -> str:
        """The line within MAX_LINE: shorten long strings, then halve the longest collections."""
        fields = dict(fields)
        for key, value in fields.items():
            if isinstance(value, str) and len(value) > _MAX_TEXT:
                left = len(value) - _MAX_TEXT
                fields[key] = f"{value[:_MAX_TEXT]}... ({left} characters left out)"
        if len(event) > _MAX_TEXT:
            event = event[:_MAX_TEXT] + "..."
        omitted: dict[str, int] = {}
        while True:
            line = self._render(level, event, fields)
            if _size(line) <= MAX_LINE:
                return line
            sized = [
                (len(json.dumps(v, ensure_ascii=False)), k)
                for k, v in fields.items()
                if isinstance(v, (list, dict)) and v and k not in _KEPT
            ]
            if not sized:
                break
            _, key = max(sized)
            value = fields[key]
            if isinstance(value, list):
                keep = len(value) // 2
                fields[key] = value[:keep]
            elif isinstance(value, dict):
                keep = len(value) // 2
                fields[key] = dict(list(value.items())[:keep])
            else:  # pragma: no cover - sized holds lists and dicts only
                break
            omitted[key] = omitted.get(key, 0) + len(value) - keep
            fields[f"{key}_omitted"] = omitted[key]
        return self._render(level, event, {"fields_omitted": sorted(fields)[:50]})

    def debug(self, event: str, **fields: object) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: object) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: object) -> None:
        self.log("error", event, **fields)


def _size(line: str) -> int:
    return len(line.encode("utf-8", "surrogatepass"))
