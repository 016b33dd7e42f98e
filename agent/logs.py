"""Log events to stderr, one per line, as JSON objects or text.

Fields are identifiers (names, sources, versions, counts, timings). A ``Secret`` passed by
mistake renders as ``***``: values never reach this module's output.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Literal

Level = Literal["debug", "info", "warning", "error"]
LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _plain(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


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

    def enabled(self, level: Level) -> bool:
        return LEVELS[level] >= self.threshold

    def log(self, level: Level, event: str, **fields: object) -> None:
        if not self.enabled(level) or self.stream is None:
            return
        if self.fmt == "json":
            obj: dict[str, object] = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{int(time.time() * 1000) % 1000:03d}Z",
                "level": level,
                "logger": "secrets-agent",
                "event": event,
            }
            obj.update({k: _plain(v) for k, v in fields.items()})
            line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        else:
            parts = [f"secrets-agent {level}: {event}"]
            for key, value in fields.items():
                parts.append(f"{key}={json.dumps(_plain(value), ensure_ascii=False)}")
            line = " ".join(parts)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def debug(self, event: str, **fields: object) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: object) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: object) -> None:
        self.log("error", event, **fields)
