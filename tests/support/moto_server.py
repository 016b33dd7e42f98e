"""Start and stop a real moto server on 127.0.0.1 for black-box tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    url: str
    proc: subprocess.Popen[bytes] | None

    def post(self, path: str, body: bytes = b"") -> None:
        # moto reads reset-auth's count from the raw body: a form content type would hide it.
        req = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(req, timeout=10).read()

    def reset(self) -> None:
        """Empty every service and turn IAM enforcement off (``reset`` alone keeps it on)."""
        self.post("/moto-api/reset-auth", b"inf")
        self.post("/moto-api/reset")

    def enforce_iam(self) -> None:
        """Turn moto's action-level IAM enforcement on for every later request."""
        self.post("/moto-api/reset-auth", b"0")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_moto() -> MotoServer:
    """Use ``MOTO_URL`` when set (CI starts one server), else start our own."""
    if os.environ.get("MOTO_URL"):
        return MotoServer(os.environ["MOTO_URL"].rstrip("/"), None)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return MotoServer(url, proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")
