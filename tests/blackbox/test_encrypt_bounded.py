"""``secrets-agent encrypt`` is bounded by SECRETS_AGENT_TIMEOUT, as resolution is.

botocore's read timeout ends an endpoint that says nothing, but not one that answers a byte at
a time, and its retries add several read timeouts together: only the overall bound holds.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, base_env
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer

CANARY = "cAnArY-3f1d0c-encrypt-bounded"
TIMEOUT = 2


class DripServer:
    """Answers every request with a 200 whose body arrives one byte every 0.5 s, for ever:
    each read gets data well within botocore's read timeout, so only an overall bound ends
    the call."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    b"Content-Length: 1000000\r\n\r\n"
                )
                while not self.stopped.wait(0.5):
                    conn.sendall(b" ")
            except OSError:
                return

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.stop()


def make_key(boto_client: Any) -> str:
    return str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])


def encrypt(endpoint: str, key: str) -> subprocess.CompletedProcess[bytes]:
    env = base_env(endpoint) | {"SECRETS_AGENT_TIMEOUT": str(TIMEOUT)}
    argv = [sys.executable, "-m", "secrets_agent", "encrypt", "--key-id", key]
    argv += ["--name", "API_TOKEN"]
    # Generous: today's unbounded encrypt never ends against the drip server.
    return subprocess.run(
        argv, env=env, input=CANARY.encode(), capture_output=True, cwd=ROOT, timeout=60
    )


def assert_timed_out(proc: subprocess.CompletedProcess[bytes]) -> None:
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 69, stderr
    assert proc.stdout == b""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "encrypting API_TOKEN" in lines[0]
    assert f"SECRETS_AGENT_TIMEOUT={TIMEOUT}s" in lines[0]
    assert CANARY not in stderr


def test_encrypt_against_a_dripping_endpoint_ends_at_the_timeout(
    moto: MotoServer, boto_client: Any, drip: DripServer
) -> None:
    key = make_key(boto_client)
    assert_timed_out(encrypt(drip.url, key))


def test_encrypt_against_a_hanging_endpoint_ends_at_the_timeout(
    moto: MotoServer, boto_client: Any
) -> None:
    key = make_key(boto_client)
    # Each request hangs far longer than the read timeout; retries would add them up.
    with FaultProxy(moto.url, FaultPlan(rate=1.0, kinds=("slow",), slow_seconds=120)) as proxy:
        assert_timed_out(encrypt(proxy.url, key))


def test_encrypt_still_works_within_the_timeout(moto: MotoServer, boto_client: Any) -> None:
    key = make_key(boto_client)
    proc = encrypt(moto.url, key)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("aesdk:")
    assert CANARY not in proc.stderr.decode()
