"""The metrics' task family comes through the one task metadata GET (aws/ecs_service.py), with
its cap: a real local HTTP server stands in for the ECS endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from secrets_agent.output.logs import Logger
from secrets_agent.output.metrics import task_family

BODIES: dict[str, bytes] = {
    "/small/task": json.dumps({"Family": "kptboard-web"}).encode(),
    "/huge/task": json.dumps({"Family": "kptboard-web", "Pad": "x" * (1 << 20)}).encode(),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODIES.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_family_is_read_and_an_answer_over_the_cap_is_ignored(endpoint: str) -> None:
    log = Logger(level="error", fmt="json")
    uri = "ECS_CONTAINER_METADATA_URI_V4"
    assert task_family({uri: endpoint + "/small"}, log=log) == "kptboard-web"
    assert task_family({uri: endpoint + "/huge"}, log=log) is None
    assert task_family({uri: "file:///etc"}, log=log) is None
