"""The checks' jitter (supervise/stagger.py), which redeploy's pacing uses."""

from __future__ import annotations

import random

from secrets_agent.supervise.stagger import JITTER, jittered


def test_a_jittered_span_stays_within_the_jitter_and_varies() -> None:
    rng = random.Random(7)
    delays = [jittered(10.0, rng) for _ in range(200)]
    assert all(10.0 * (1 - JITTER) <= d <= 10.0 * (1 + JITTER) for d in delays)
    assert len(set(delays)) > 1
