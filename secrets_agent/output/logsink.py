"""Supervise mode's stderr: log lines are queued and written by a daemon thread.

A log driver that stops reading (its pipe full) would block every ``write`` to stderr, and a
supervisor blocked in a log line neither starts its command, nor forwards a signal, nor exits
with the command's status. Here the supervising thread only appends to a bounded queue; one
writer thread does the blocking writes. When the queue is full, further lines are dropped (and
counted) until the writer catches up. At exit the agent waits at most ``EXIT_GRACE`` seconds
for the queue to drain, then exits anyway: a writer stuck in ``write`` ends with the process.

The writer thread blocks every signal, so the signals the supervisor reads with
``sigtimedwait`` can never be delivered to it.

Exec mode uses the same queue with a deadline (``block_until``, the end of
``SECRETS_AGENT_TIMEOUT``): until then a full queue makes the caller wait for room, so that a
slow but working stderr loses no line; after it, lines are dropped as in supervise mode.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque

CAPACITY = 1000  # lines
EXIT_GRACE = 1.0  # seconds

_active: QueuedStderr | None = None


class QueuedStderr:
    """A write-only text stream on a file descriptor whose writes never block the caller."""

    def __init__(
        self, fd: int = 2, *, capacity: int = CAPACITY, block_until: float | None = None
    ) -> None:
        self._fd = fd
        self._capacity = capacity
        self._block_until = block_until
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._writing = False
        self.dropped = 0
        thread = threading.Thread(target=self._run, name="secrets-agent-stderr", daemon=True)
        # Started with every signal blocked: a new thread inherits its creator's mask.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def isatty(self) -> bool:
        try:
            return os.isatty(self._fd)
        except OSError:
            return False

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self._cond:
            if len(self._queue) >= self._capacity and self._block_until is not None:
                self._cond.wait_for(
                    lambda: len(self._queue) < self._capacity,
                    timeout=max(0.0, self._block_until - time.monotonic()),
                )
            if len(self._queue) >= self._capacity:
                self.dropped += 1
            else:
                self._queue.append(data)
                self._cond.notify_all()
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the writer thread writes each line as soon as it can."""

    def drain(self, timeout: float) -> bool:
        """Wait until every queued line is written, at most ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._writing, timeout=timeout
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                data = self._queue.popleft()
                self._writing = True
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                pass  # stderr closed or broken: the line is lost, as a write would lose it
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()


def install(fd: int = 2, *, block_until: float | None = None) -> QueuedStderr:
    """The process's queued stderr (created once); ``drain_active`` waits for it at exit."""
    global _active
    if _active is None:
        _active = QueuedStderr(fd, block_until=block_until)
    return _active


def drain_active(timeout: float = EXIT_GRACE) -> None:
    if _active is not None:
        _active.drain(timeout)
