"""A stand-in for the ECS task metadata endpoint (v4) on 127.0.0.1.

One server serves many tasks: ``add(task)`` returns the value of ``ECS_CONTAINER_METADATA_URI_V4``
for that task (``http://127.0.0.1:PORT/v4/ID``), under which ``GET .../task`` answers the task's
JSON, as ECS's endpoint does. ``requests`` counts the answers given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalServer


class TaskMetadataServer(LocalServer):
    def __init__(self) -> None:
        self._tasks: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                body = None
                if len(parts) == 3 and parts[0] == "v4" and parts[2] == "task":
                    with server._lock:
                        body = server._tasks.get(parts[1])
                        server.requests += 1
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._listen(Handler)

    def add(self, task: Mapping[str, Any]) -> str:
        """Serve ``task`` as ``/task`` of a new endpoint; return that endpoint's URI."""
        with self._lock:
            key = f"task{len(self._tasks)}"
            self._tasks[key] = json.dumps(dict(task)).encode()
        return f"{self.url}/v4/{key}"


def task_document(
    *, cluster_arn: str, task_arn: str, service_name: str | None = None
) -> dict[str, Any]:
    """A ``/task`` answer as ECS gives it: Fargate leaves ``ServiceName`` out, EC2 has it."""
    task: dict[str, Any] = {
        "Cluster": cluster_arn,
        "TaskARN": task_arn,
        "Family": "app",
        "Revision": "1",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "LaunchType": "FARGATE" if service_name is None else "EC2",
        "Containers": [{"Name": "app", "DockerId": "0" * 32}],
    }
    if service_name is not None:
        task["ServiceName"] = service_name
    return task
