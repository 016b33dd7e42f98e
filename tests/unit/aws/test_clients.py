"""secrets_agent.aws.clients against a local fake endpoint: answers that must fail, not end a
load."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from secrets_agent.aws import ssm
from secrets_agent.aws.clients import AttemptLog, Clients
from secrets_agent.core.errors import ServiceError
from secrets_agent.output.logs import Logger


class _EmptySecondPage(BaseHTTPRequestHandler):
    """GetParametersByPath: page 1 holds one parameter and a NextToken; page 2 is an empty 200."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = b""
        if "NextToken" not in request:
            param = {"Name": "/app/a", "Value": "1", "Version": 1}
            page = {"Parameters": [param], "NextToken": "2"}
            body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptySecondPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_empty_2xx_body_is_an_error_not_the_last_page(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(var, value)
    log = Logger(level="error", fmt="json")
    environ = {"AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2"}
    clients = Clients(environ=environ, timeout=5, log=log)
    with pytest.raises(ServiceError, match="with an empty body, on every attempt"):
        ssm.load_path(clients.get("ssm"), "/app", log=log)


# -- what a 69 says went wrong: the attempt log --------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_retry_sent_just_before_the_deadline_keeps_the_failure_before_it() -> None:
    clock = _Clock()
    log = AttemptLog(clock)
    log.sent("127.0.0.1:9")
    log.ended("127.0.0.1:9", "refused")
    clock.now += 0.2
    log.sent("127.0.0.1:9")  # a retry, still waiting when the deadline passes
    clock.now += 0.01
    assert log.last_failure() == ("127.0.0.1:9", "refused")


def test_an_attempt_waiting_past_the_bound_is_timed_out() -> None:
    clock = _Clock()
    log = AttemptLog(clock)
    log.sent("ssm.example:443")
    log.ended("ssm.example:443", "refused")
    log.sent("ssm.example:443")
    clock.now += AttemptLog.WAITING
    assert log.last_failure() == ("ssm.example:443", "timed out")


def test_a_first_attempt_still_waiting_is_timed_out_whatever_its_age() -> None:
    clock = _Clock()
    log = AttemptLog(clock)
    log.sent("kms.example:443")
    assert log.last_failure() == ("kms.example:443", "timed out")


def test_good_answers_leave_nothing_to_tell() -> None:
    log = AttemptLog(_Clock())
    log.sent("ssm.example:443")
    log.ended("ssm.example:443", None)
    assert log.last_failure() is None
