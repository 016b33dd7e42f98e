"""secrets_agent.supervise.redeploy's pure parts: when a change happened, and how far a task
stretches."""

from __future__ import annotations

from secrets_agent.core.model import Item, Secret
from secrets_agent.resolve.pipeline import Fetched
from secrets_agent.supervise.redeploy import MAX_STRETCH, change_time, stretch


def _item(name: str, version: str, modified: float | None) -> Item:
    return Item("ssm", name, Secret("v" + version), version, key=name, modified=modified)


def test_the_change_is_when_its_latest_part_was_written() -> None:
    old_items = (_item("/a", "1", 100.0), _item("/b", "1", 110.0))
    new_items = (_item("/a", "2", 500.0), _item("/b", "1", 110.0), _item("/c", "1", 400.0))
    old = Fetched(old_items, {}).fingerprint()
    fetched = Fetched(new_items, {})
    # /a moved (written at 500), /c appeared (400); /b is unchanged and does not count.
    assert change_time(old, fetched.fingerprint(), fetched, fallback=1.0) == 500.0


def test_a_removed_or_undated_part_falls_back() -> None:
    old = Fetched((_item("/a", "1", 100.0), _item("/b", "1", 100.0)), {}).fingerprint()
    gone = Fetched((_item("/a", "1", 100.0),), {})
    assert change_time(old, gone.fingerprint(), gone, fallback=7.0) == 7.0
    undated = Fetched((_item("/a", "2", None), _item("/b", "1", 100.0)), {})
    assert change_time(old, undated.fingerprint(), undated, fallback=7.0) == 7.0


def test_the_stretch_is_the_running_count_bounded() -> None:
    assert stretch(0) == 1 and stretch(1) == 1
    assert stretch(20) == 20
    assert stretch(100_000) == MAX_STRETCH == 100
