#!/usr/bin/env python3
"""Run ``secrets_agent.supervise.supervisor.Supervisor`` with a watcher driven by a file, for
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from secrets_agent.core.errors import DataError  # noqa: E402
from secrets_agent.output.logs import Logger  # noqa: E402
from secrets_agent.supervise.supervisor import Change, Supervisor  # noqa: E402


class FileWatcher:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = ""
        self.pending = ""

    def poll(self) -> Change | None:
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
        changes = tuple(f"{name} (file)" for name in sorted(data))
        return Change(env={**os.environ, **data}, changes=changes)

    def commit(self) -> None:
        self.seen = self.pending


def main() -> int:
    watch, on_change, stop_timeout, interval, *command = sys.argv[1:]
    assert on_change in ("restart", "exit")
    return Supervisor(
        command,
        dict(os.environ),
        interval=float(interval),
        on_change="restart" if on_change == "restart" else "exit",
        stop_timeout=float(stop_timeout),
        watcher=FileWatcher(Path(watch)),
        log=Logger(level="debug", fmt="json"),
    ).run()


if __name__ == "__main__":
    sys.exit(main())
