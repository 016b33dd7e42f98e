"""The one way the agent runs independent work side by side: every source, every batch of
references, every ``aesdk:`` value. Pure concurrency, nothing of AWS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
#: Threads for one fan-out: far below botocore's 20 pooled connections per client. The one
#: home of the worker count: the Secrets Manager reads and the aesdk: decrypts use it.
MAX_WORKERS = 8


def run_all(tasks: Sequence[Callable[[], R]], *, max_workers: int = MAX_WORKERS) -> list[R]:
    """Every task's result, in order; the first failure is raised at once.

    A slow or hanging task must not hide another's failure (and turn an access denied into a
    timeout): the first exception ends the wait, and the other threads are left to finish on
    their own. On success the workers are joined: supervise mode must start with no other
    thread that could take a signal meant for the supervisor.
    """
    if len(tasks) <= 1:
        return [task() for task in tasks]
    pool = ThreadPoolExecutor(max_workers=min(max_workers, len(tasks)))
    failed = True
    try:
        futures: list[Future[R]] = [pool.submit(task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                future.result()
        results = [future.result() for future in futures]
        failed = False
        return results
    finally:
        pool.shutdown(wait=not failed, cancel_futures=True)


def map_all(fn: Callable[[T], R], args: Sequence[T], *, max_workers: int = MAX_WORKERS) -> list[R]:
    """``[fn(a) for a in args]``, side by side (see ``run_all``)."""
    return run_all([lambda a=a: fn(a) for a in args], max_workers=max_workers)  # type: ignore[misc]
