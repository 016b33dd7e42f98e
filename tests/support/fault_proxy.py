"""A fault-injecting HTTP proxy for reliability tests.

It sits between a client and a real moto server on 127.0.0.1 and, following a
``FaultPlan``, answers some requests itself with a fault instead of forwarding them:

* ``throttle``  HTTP 400 ``{"__type": "ThrottlingException", "message": "Rate exceeded"}``
  (the JSON protocol of SSM, Secrets Manager and KMS; an XML ``Throttling`` error for
  query-protocol requests),
* ``500``       HTTP 500 with an ``InternalServerError`` body,
* ``reset``     the connection is closed with ``SO_LINGER 0`` (the client sees ECONNRESET),
* ``truncate``  the real response, with a ``Content-Length`` larger than the bytes sent,
  then the connection is closed,
* ``slow``      wait ``slow_seconds`` before forwarding (longer than the client's read
  timeout, to exercise it),
* ``garbled``   the real response cut to its first half, with a matching ``Content-Length``:
  a complete HTTP answer whose body is not valid JSON (and holds part of the real values),
* ``empty``     the real status and headers with an empty body (``Content-Length: 0``).

Which requests fail: after ``after`` requests forwarded untouched, the next ``first_n``
requests (deterministic), then each later one with probability ``rate`` (seeded).
``targets`` limits faults (and the counting of ``after`` and ``first_n``) to some operations
(``X-Amz-Target`` suffixes such as ``GetParametersByPath``): ``after=1, rate=1.0,
targets=("GetParametersByPath",)`` fails every page but the first. ``/moto-api/`` requests are
always forwarded and never counted.

Usable as a context manager::

    with FaultProxy(moto.url, FaultPlan(rate=0.3, kinds=("throttle",))) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.url
        ...
        proxy.stats()  # {"requests": .., "faults": .., "by_kind": {..}, ...}

or standalone: ``python -m tests.support.fault_proxy --upstream http://127.0.0.1:5000 --rate 0.3``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalServer

KINDS = ("throttle", "500", "reset", "truncate", "slow", "garbled", "empty")
# Hop-by-hop headers, and the ones the proxy writes itself.
NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "content-length",
        "server",
        "date",
    }
)


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail and how. The default plan forwards everything."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttle",)
    first_n: int = 0
    after: int = 0
    slow_seconds: float = 5.0
    seed: int | None = None
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, not {self.rate}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, not {self.kinds}")
        if min(self.first_n, self.after, self.slow_seconds) < 0:
            raise ValueError("first_n, after and slow_seconds must not be negative")


@dataclass
class _Counters:
    requests: int = 0
    faults: int = 0
    forwarded: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)
    faults_by_target: Counter[str] = field(default_factory=Counter)


class FaultProxy(LocalServer):
    """A threaded HTTP proxy on 127.0.0.1 that forwards to ``upstream`` or injects a fault."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, *, port: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)
        self._first_left = self._plan.first_n
        self._after_left = self._plan.after
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._listen(_make_handler(self), port)
        self._server.request_queue_size = 128

    # -- life cycle -------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    # -- plan and counters ------------------------------------------------------------
    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan; ``first_n`` counts from the next request."""
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._first_left = plan.first_n
            self._after_left = plan.after

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = _Counters()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            c = self._counters
            return {
                "requests": c.requests,
                "faults": c.faults,
                "forwarded": c.forwarded,
                "by_kind": dict(c.by_kind),
                "by_target": dict(c.by_target),
                "faults_by_target": dict(c.faults_by_target),
            }

    def operations(self) -> dict[str, int]:
        """Requests passed on, by operation name (``AmazonSSM.GetParametersByPath`` -> its
        name)."""
        out: dict[str, int] = {}
        for target, count in self.stats()["by_target"].items():
            name = str(target).rpartition(".")[2]
            out[name] = out.get(name, 0) + int(count)
        return out

    def _decide(self, target: str) -> str | None:
        """Count one request and return the fault to inject, or None to forward it."""
        with self._lock:
            plan = self._plan
            c = self._counters
            c.requests += 1
            c.by_target[target] += 1
            eligible = not plan.targets or any(target.endswith(t) for t in plan.targets)
            kind: str | None = None
            if eligible and self._after_left > 0:
                self._after_left -= 1
            elif eligible and self._first_left > 0:
                self._first_left -= 1
                kind = plan.kinds[(plan.first_n - self._first_left - 1) % len(plan.kinds)]
            elif eligible and plan.rate > 0 and self._rng.random() < plan.rate:
                kind = self._rng.choice(plan.kinds)
            if kind is None:
                c.forwarded += 1
            else:
                c.faults += 1
                c.by_kind[kind] += 1
                c.faults_by_target[target] += 1
            return kind

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _throttle_body(json_protocol: bool) -> tuple[bytes, str]:
    if json_protocol:
        body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return json.dumps(body).encode(), "application/x-amz-json-1.1"
    xml = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        "<Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId>"
        "</ErrorResponse>"
    )
    return xml.encode(), "text/xml"


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fault-proxy"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/moto-api/"):
                self._forward(body)
                return
            amz_target = self.headers.get("X-Amz-Target", "")
            target = amz_target or _query_action(body) or self.path
            kind = proxy._decide(target)
            json_protocol = bool(amz_target)
            try:
                if kind is None:
                    self._forward(body)
                elif kind == "throttle":
                    payload, ctype = _throttle_body(json_protocol)
                    self._reply(400, payload, ctype, {"x-amzn-ErrorType": "ThrottlingException"})
                elif kind == "500":
                    payload = json.dumps(
                        {
                            "__type": "InternalServerError",
                            "message": "fault-proxy: injected 500",
                        }
                    ).encode()
                    self._reply(500, payload, "application/x-amz-json-1.1", {})
                elif kind == "reset":
                    self._reset()
                elif kind == "truncate":
                    self._forward(body, truncate=True)
                elif kind == "garbled":
                    self._forward(body, garble=True)
                elif kind == "empty":
                    self._forward(body, empty=True)
                elif kind == "slow":
                    proxy._sleep(proxy._plan.slow_seconds)
                    self._forward(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _reply(self, status: int, payload: bytes, ctype: str, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", "fault-proxy")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def _reset(self) -> None:
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            sock.close()

        def _forward(
            self, body: bytes, *, truncate: bool = False, garble: bool = False, empty: bool = False
        ) -> None:
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                status, reason, resp_headers = (
                    resp.status,
                    resp.reason,
                    resp.getheaders(),
                )
            except (OSError, http.client.HTTPException) as exc:
                msg = json.dumps({"__type": "BadGateway", "message": repr(exc)}).encode()
                self._reply(502, msg, "application/json", {})
                return
            finally:
                conn.close()
            self.send_response(status, reason)
            for key, value in resp_headers:
                if key.lower() not in NOT_FORWARDED:
                    self.send_header(key, value)
            if truncate:
                self.send_header("Content-Length", str(len(payload) + 64))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if garble:
                payload = payload[: len(payload) // 2]
            if empty:
                payload = b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

    return Handler


def _query_action(body: bytes) -> str:
    """The ``Action=`` of a query-protocol request (STS and friends), else ``""``."""
    if b"Action=" not in body:
        return ""
    try:
        query = urllib.parse.parse_qs(body.decode("ascii", "replace"))
    except ValueError:
        return ""
    return query.get("Action", [""])[0]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fault_proxy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--upstream", required=True, help="the moto server URL, http://127.0.0.1:PORT"
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--rate", type=float, default=0.0, help="probability a request fails, 0..1")
    parser.add_argument(
        "--kinds",
        default="throttle",
        help=f"comma-separated subset of {','.join(KINDS)}",
    )
    parser.add_argument("--first-n", type=int, default=0, help="the first N requests fail")
    parser.add_argument(
        "--after", type=int, default=0, help="forward the first N requests untouched"
    )
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--targets",
        default="",
        help="comma-separated operations to fault (default all)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        plan = FaultPlan(
            rate=args.rate,
            kinds=tuple(k for k in args.kinds.split(",") if k),
            first_n=args.first_n,
            after=args.after,
            slow_seconds=args.slow_seconds,
            seed=args.seed,
            targets=tuple(t for t in args.targets.split(",") if t),
        )
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with FaultProxy(args.upstream, plan, port=args.port) as proxy:
        print(proxy.url, flush=True)
        started = time.monotonic()
        while not stop.wait(0.2):
            pass
        stats = proxy.stats()
        stats["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(stats, sort_keys=True), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
