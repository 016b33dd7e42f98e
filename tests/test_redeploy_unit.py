"""agent.redeploy's pure parts: which deployment replaces a task, and how far a task stretches."""

from __future__ import annotations

from agent.redeploy import CLOCK_MARGIN, MAX_STRETCH, replacing, stretch


def test_only_a_deployment_created_after_the_task_resolved_replaces_it() -> None:
    resolved = 1_000.0
    # The task's own deployment, and any older one, do not replace it.
    assert replacing((900.0, 990.0), resolved) is None
    assert replacing((), resolved) is None
    # One created after the task resolved, by more than the clock margin, does: the newest.
    later = resolved + CLOCK_MARGIN + 1
    assert replacing((990.0, later), resolved) == later


def test_a_deployment_within_the_clock_margin_does_not_replace_the_task() -> None:
    """ECS's clock may run ahead of the task's: a deployment that seems a little newer than
    the task may be the one that started it. Asking once more is the safe side."""
    resolved = 1_000.0
    assert replacing((resolved + 0.5,), resolved) is None
    assert replacing((resolved + CLOCK_MARGIN,), resolved) is None


def test_the_stretch_is_the_running_count_bounded() -> None:
    assert stretch(0) == 1 and stretch(1) == 1
    assert stretch(20) == 20
    assert stretch(100_000) == MAX_STRETCH == 100
