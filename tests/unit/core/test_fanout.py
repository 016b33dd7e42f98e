"""The one worker count: a fan-out runs at most MAX_WORKERS tasks at once."""

from __future__ import annotations

import threading
import time

from secrets_agent.core.fanout import MAX_WORKERS, map_all


def test_a_fan_out_runs_at_most_max_workers_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    map_all(work, list(range(MAX_WORKERS * 3)))
    assert 1 < peak <= MAX_WORKERS
