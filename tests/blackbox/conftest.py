"""Fixtures of the black-box tests of redeploy mode (test_redeploy, test_redeploy_rollback)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ecs_metadata import TaskMetadataServer
from tests.support.supervised import Fleet


@pytest.fixture
def metadata() -> Iterator[TaskMetadataServer]:
    """A task metadata endpoint on 127.0.0.1 that serves the documents ``add`` is given."""
    with TaskMetadataServer() as server:
        yield server


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Any]:
    """``agents(env, *reported)``: an agent supervising the signal-echo command (see
    ``Fleet.start``), up to 60 s to start; all stopped after the test."""
    fleet = Fleet(tmp_path)
    yield functools.partial(fleet.start, timeout=60)
    fleet.close()
