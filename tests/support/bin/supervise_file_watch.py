#!/usr/bin/env python3
"""Run ``secrets_agent.supervise.supervisor.supervise`` with a watcher driven by a file, for
restart tests.

Usage: supervise_file_watch.py WATCHFILE ON_CHANGE STOP_TIMEOUT INTERVAL CMD [ARG...]

Each poll reads WATCHFILE: missing or unchanged -> no change; ``{"broken": true}`` -> the check
fails (DataError); ``{"sleep": S, ...}`` -> the check takes S seconds; any other JSON object ->
the new environment is this process's environment updated with the object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from secrets_agent.core.errors import DataError  # noqa: E402
from secrets_agent.output.logs import Logger  # noqa: E402
from secrets_agent.supervise.supervisor import supervise  # noqa: E402


class FileWatcher:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = ""
        self.pending = ""
        self.last_changes: list[str] = []

    def poll(self) -> Mapping[str, str] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if text == self.seen:
            return None
        data = json.loads(text)
        time.sleep(float(data.pop("sleep", 0)))
        if data.pop("broken", False):
            raise DataError("TOKEN: two parameters give the same name (test)")
        self.pending = text
        self.last_changes = [f"{name} (file)" for name in sorted(data)]
        return {**os.environ, **data}

    def commit(self) -> None:
        self.seen = self.pending


def main() -> int:
    watch, on_change, stop_timeout, interval, *command = sys.argv[1:]
    assert on_change in ("restart", "exit")
    return supervise(
        command,
        dict(os.environ),
        interval=float(interval),
        on_change="restart" if on_change == "restart" else "exit",
        stop_timeout=float(stop_timeout),
        watcher=FileWatcher(Path(watch)),
        log=Logger(level="debug", fmt="json"),
    )


if __name__ == "__main__":
    sys.exit(main())
