#!/usr/bin/env python3
"""The real ``docker/docker-entrypoint.py`` with supervise mode's interval floor lowered.

Rotation tests check every second, not every 30 s
(``secrets_agent.core.settings.MIN_WATCH_INTERVAL``,
which protects the account's request quota). This wrapper sets that module attribute, then
runs the unchanged entrypoint in the same process. It exists only here: the agent has no
setting that lowers the floor.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import secrets_agent.core.settings  # noqa: E402

secrets_agent.core.settings.MIN_WATCH_INTERVAL = 0.1
sys.argv[0] = str(ROOT / "docker" / "docker-entrypoint.py")
runpy.run_path(sys.argv[0], run_name="__main__")
