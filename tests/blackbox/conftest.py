"""Fixtures of the black-box tests: redeploy mode's (test_redeploy, test_redeploy_rollback), and
a stderr whose pipe is full (test_blocked_stderr, test_bounded_start)."""

from __future__ import annotations

import fcntl
import functools
import os
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


@pytest.fixture
def full_pipe() -> Iterator[int]:
    """The write end of a pipe whose buffer is full; the read end stays open, never read."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    # Blocking again, as a log driver's pipe is: a writer waits for room.
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    try:
        yield write_end
    finally:
        os.close(write_end)
        os.close(read_end)
