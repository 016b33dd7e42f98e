"""The real entrypoint against an endpoint that misbehaves in ways a fault proxy in front of moto
cannot: answers of gigabytes, and pages that send the load in a circle."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import base_env, run_agent

Answer = Callable[[BaseHTTPRequestHandler, dict[str, object]], None]


class Endpoint:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[str] = []
        self.sent = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer.requests.append(self.headers.get("X-Amz-Target", ""))
                try:
                    outer.answer(self, json.loads(body))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n


@pytest.fixture
def endpoint() -> Iterator[Callable[[Answer], Endpoint]]:
    started: list[Endpoint] = []

    def start(answer: Answer) -> Endpoint:
        ep = Endpoint(answer)
        threading.Thread(target=ep.server.serve_forever, daemon=True).start()
        started.append(ep)
        return ep

    yield start
    for ep in started:
        ep.server.shutdown()
        ep.server.server_close()


def _headers(handler: BaseHTTPRequestHandler, length: int | None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-amz-json-1.1")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()


HUGE = 1024 * 1024 * 1024  # 1 GiB: what the agent would hold in memory without a cap


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "until-close"])
def test_an_answer_of_a_gigabyte_is_69_naming_the_operation_without_reading_it(
    endpoint: Callable[[Answer], Endpoint], tmp_path: Path, announced: bool
) -> None:
    """A broken proxy streams a 2xx body of 1 GiB. The agent reads at most its cap from one
    answer, then stops: 69 with one line, the command never started."""
    chunk = b'{"Parameters": [' + b" " * (1024 * 1024 - 16)

    def answer(handler: BaseHTTPRequestHandler, request: dict[str, object]) -> None:
        _headers(handler, HUGE if announced else None)
        for _ in range(HUGE // len(chunk)):
            handler.wfile.write(chunk)
            ep.count(len(chunk))

    ep = endpoint(answer)
    env = base_env(ep.url) | {"PARAMETER_STORE_PREFIX": "/app", "SECRETS_AGENT_TIMEOUT": "60"}
    run = run_agent(tmp_path, env, timeout=120)
    assert run.returncode == 69, run.stderr
    assert not run.ran
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "GetParametersByPath" in lines[0]
    assert "MiB the agent reads from one answer" in lines[0]
    assert ep.requests == ["AmazonSSM.GetParametersByPath"]  # not retried
    # The endpoint could hand over little more than the cap (plus socket buffers) before the
    # agent hung up; without the cap it would have sent the whole gigabyte.
    assert ep.sent < 256 * 1024 * 1024


def test_a_page_token_seen_before_is_69_not_a_loop_until_the_timeout(
    endpoint: Callable[[Answer], Endpoint], tmp_path: Path
) -> None:
    """GetParametersByPath answers every page with the same NextToken (and one parameter)."""

    def answer(handler: BaseHTTPRequestHandler, request: dict[str, object]) -> None:
        page = {
            "Parameters": [{"Name": "/app/a", "Type": "SecureString", "Value": "v", "Version": 1}],
            "NextToken": "same-token",
        }
        body = json.dumps(page).encode()
        _headers(handler, len(body))
        handler.wfile.write(body)

    ep = endpoint(answer)
    env = base_env(ep.url) | {"PARAMETER_STORE_PREFIX": "/app", "SECRETS_AGENT_TIMEOUT": "20"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 69, run.stderr
    assert not run.ran
    assert "GetParametersByPath on " in run.stderr
    assert "returned the same page token twice" in run.stderr
    assert len(ep.requests) == 2  # page 1 gives the token, page 2 gives it again: stop
