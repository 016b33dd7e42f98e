"""Unit tests of secrets_agent.resolve.pipeline's concurrency: the change watcher and the fetch
fan-out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from secrets_agent.aws.clients import Clients
from secrets_agent.core.errors import AccessDeniedError, ServiceError
from secrets_agent.core.model import Item, Secret
from secrets_agent.core.plan import Plan
from secrets_agent.core.settings import Settings
from secrets_agent.output.logs import Logger
from secrets_agent.resolve import pipeline as resolve
from secrets_agent.supervise import watch


def _clients() -> Clients:
    """Real clients that are never asked for one: the sources are handed in."""
    return Clients(environ={}, timeout=5, log=Logger(level="error", fmt="json"))


def _fetched(value: str, version: str) -> resolve.Fetched:
    item = Item("ssm", "/app/token", Secret(value), version, key="token")
    return resolve.Fetched(prefix_items=(item,), ref_items={})


class _Source:
    """A fake ``secrets_agent.core.sources.Source``: ``load`` runs ``on_load``, ``read`` finds
    nothing."""

    def __init__(self, on_load: Callable[[str], list[Item]]) -> None:
        self.on_load = on_load
        self.loaded: list[str] = []

    def load(self, prefix: str) -> list[Item]:
        self.loaded.append(prefix)
        return self.on_load(prefix)

    def read(self, refs: Mapping[str, Any]) -> dict[str, Item]:
        return {}


@dataclass
class _Sources:
    ssm: _Source
    secrets_manager: _Source


def test_a_check_that_outlives_the_timeout_does_not_swallow_the_change() -> None:
    """A timed-out check keeps running in its thread; when it ends, it must not record the new
    versions as seen, or the next check finds nothing changed and the rotation is missed."""
    slow = threading.Event()
    finished = threading.Event()

    def load(prefix: str) -> list[Item]:
        if not slow.is_set():
            slow.set()
            time.sleep(0.6)  # longer than the 0.2 s timeout below
            finished.set()
        return list(_fetched("new", "2").prefix_items)

    settings = Settings(parameter_store_prefix="/app", timeout=0.2, watch_interval=1)
    plan = Plan(ssm_prefixes=("/app",), sm_prefixes=(), refs={})
    watcher = watch.ResolveWatcher(
        plan,
        settings=settings,
        environ={},
        clients=_clients(),
        log=Logger(level="error", fmt="json"),
        fingerprint=_fetched("old", "1").fingerprint(),
        sources=_Sources(ssm=_Source(load), secrets_manager=_Source(lambda prefix: [])),
    )
    with pytest.raises(ServiceError):
        watcher.poll()
    assert finished.wait(10)
    time.sleep(0.1)  # let the abandoned check return
    change = watcher.poll()
    assert change is not None and change.env == {"TOKEN": "new"}
    assert change.changes == ("ssm:/app/token version 1 -> 2",)
    # Reported again until the supervisor takes it (it may refuse it: a partial environment).
    again = watcher.poll()
    assert again is not None and again.env == {"TOKEN": "new"}
    watcher.commit()
    assert watcher.poll() is None  # seen once the supervisor had it


def test_fetch_fails_on_the_first_error_without_waiting_for_a_slow_source() -> None:
    release = threading.Event()

    def slow(prefix: str) -> list[Item]:
        release.wait(10)
        return []

    def denied(prefix: str) -> list[Item]:
        raise AccessDeniedError("secretsmanager:BatchGetSecretValue was denied")

    sources = _Sources(ssm=_Source(slow), secrets_manager=_Source(denied))
    plan = Plan(ssm_prefixes=("/app",), sm_prefixes=("app",), refs={})
    started = time.monotonic()
    try:
        with pytest.raises(AccessDeniedError):
            resolve.fetch(plan, sources)
        assert time.monotonic() - started < 5  # not the 10 s the slow source would take
    finally:
        release.set()


def test_fetch_asks_each_source_for_each_of_its_layers_and_marks_the_items() -> None:
    def items(prefix: str) -> list[Item]:
        return [Item("ssm", f"{prefix}/token", Secret(prefix), "1", key="token")]

    sources = _Sources(ssm=_Source(items), secrets_manager=_Source(lambda prefix: []))
    plan = Plan(ssm_prefixes=("/common", "/prod"), sm_prefixes=("app/prod",), refs={})
    fetched = resolve.fetch(plan, sources)
    assert sorted(sources.ssm.loaded) == ["/common", "/prod"]
    assert sources.secrets_manager.loaded == ["app/prod"]
    assert sorted((i.layer, i.value.reveal()) for i in fetched.prefix_items) == [
        ("/common", "/common"),
        ("/prod", "/prod"),
    ]


def test_a_pinned_reference_does_not_hide_a_new_version_of_the_same_parameter() -> None:
    """Two reads of one parameter (latest and pinned) are two entries of the fingerprint."""
    pinned = Item("ssm", "/app/x", Secret("v1"), "1")

    def fetched(latest: Item) -> resolve.Fetched:
        prefix = Item("ssm", "/app/x", latest.value, latest.version, key="x")
        return resolve.Fetched(
            prefix_items=(prefix,), ref_items={"LATEST": latest, "PINNED": pinned}
        )

    before = fetched(Item("ssm", "/app/x", Secret("v1"), "1"))
    after = fetched(Item("ssm", "/app/x", Secret("v2"), "2"))
    assert before.fingerprint() != after.fingerprint()
    only_prefix_changed = resolve.Fetched(
        prefix_items=after.prefix_items, ref_items=before.ref_items
    )
    assert before.fingerprint() != only_prefix_changed.fingerprint()
