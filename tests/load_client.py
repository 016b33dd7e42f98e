"""A small load generator on 127.0.0.1: a few clients in threads, each sending GET requests one
after another on a new connection each (as a load balancer opening connections to a target),
bounded in count and time. Every answer is kept: when it started, how long it took, its status
and body, or the connection error."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    started: float
    seconds: float
    status: int | None
    body: Any = None
    error: str | None = None


class Load:
    def __init__(
        self,
        port: int,
        path: str,
        *,
        clients: int = 4,
        max_seconds: float = 180.0,
        max_requests: int = 200_000,
        timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.path = path
        self.timeout = timeout
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._client, daemon=True, name=f"load-{n}")
            for n in range(clients)
        ]
        for thread in self.threads:
            thread.start()

    def _client(self) -> None:
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if len(self.answers) >= self.max_requests:
                    return
            started = time.monotonic()
            answer = Answer(started, 0.0, None)
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            response: http.client.HTTPResponse | None = None
            try:
                conn.request("GET", self.path, headers={"Connection": "close"})
                response = conn.getresponse()
                data = response.read()
                answer.status = response.status
                try:
                    answer.body = json.loads(data)
                except ValueError:
                    answer.body = data[:200].decode(errors="replace")
            except OSError as exc:
                answer.error = f"{type(exc).__name__}: {exc}"
            finally:
                # The response holds the socket after conn.close(): a read cut short (a
                # connection reset while the app restarts) would leave it open.
                if response is not None:
                    response.close()
                conn.close()
            answer.seconds = time.monotonic() - started
            with self.lock:
                self.answers.append(answer)

    def stop(self) -> list[Answer]:
        self.stopped.set()
        for thread in self.threads:
            thread.join(self.timeout + 5)
        with self.lock:
            return sorted(self.answers, key=lambda a: a.started)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def failures(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.error is not None or a.status != 200]


def summary(answers: list[Answer]) -> dict[str, float]:
    """Requests, failures and latency percentiles (ms) of ``answers``."""
    ok = sorted(a.seconds for a in answers if a.error is None and a.status == 200)

    def pct(p: float) -> float:
        if not ok:
            return 0.0
        return round(1000 * ok[min(len(ok) - 1, int(p * len(ok)))], 1)

    return {
        "requests": len(answers),
        "failed": len(failures(answers)),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * max(ok), 1) if ok else 0.0,
    }
