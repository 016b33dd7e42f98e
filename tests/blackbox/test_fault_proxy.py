"""The fault proxy itself, checked with plain boto3 (or raw HTTP) against the real moto server.

Each fault must be the failure it imitates on the wire (so the agent tests exercise the real
retry paths), and the counters must be exact (the load figures depend on them). How botocore
reads a malformed 2xx answer (truncated, empty, not JSON) depends on the transport's version,
so those kinds are checked on the wire here and through the agent in test_reliability.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import REGION, ROOT
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer


def client(url: str, service: str = "ssm", *, attempts: int = 1, read_timeout: float = 2) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": attempts},
            read_timeout=read_timeout,
            connect_timeout=2,
        ),
    )


# A slow fault outlasts the read timeout by far, and the read timeout leaves a loaded machine
# room to forward a healthy request through the proxy: a timed-out healthy request would be
# a wrong failure kind or an extra retry.
READ_TIMEOUT = 3.0
SLOW_SECONDS = 8.0


@pytest.fixture
def seeded(moto: MotoServer) -> MotoServer:
    ssm = client(moto.url, attempts=3, read_timeout=30)
    ssm.put_parameter(Name="/app/one", Value="1", Type="String")
    # Warm moto's SSM backend so a cold first request cannot hit the read timeout.
    ssm.get_parameters_by_path(Path="/app")
    return moto


def test_forwards_unchanged_and_counts(seeded: MotoServer) -> None:
    with FaultProxy(seeded.url) as proxy:
        ssm = client(proxy.url)
        ssm.put_parameter(Name="/app/two", Value="a=b\nc", Type="SecureString")
        got = ssm.get_parameter(Name="/app/two", WithDecryption=True)["Parameter"]["Value"]
        assert got == "a=b\nc"
        stats = proxy.stats()
    assert stats["requests"] == 2
    assert stats["forwarded"] == 2
    assert stats["faults"] == 0
    assert stats["by_target"] == {
        "AmazonSSM.PutParameter": 1,
        "AmazonSSM.GetParameter": 1,
    }


def test_moto_api_is_forwarded_and_not_counted(seeded: MotoServer) -> None:
    with FaultProxy(seeded.url, FaultPlan(rate=1.0, kinds=("500",))) as proxy:
        MotoServer(proxy.url, None).reset()
        assert proxy.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("throttle", "ThrottlingException"),
        ("500", "InternalServerError"),
        ("reset", "ConnectionClosedError"),
        ("slow", "ReadTimeoutError"),
    ],
)
def test_each_fault_is_the_failure_botocore_expects(
    seeded: MotoServer, kind: str, expected: str
) -> None:
    from botocore.exceptions import ClientError

    plan = FaultPlan(first_n=1, kinds=(kind,), slow_seconds=SLOW_SECONDS)
    with FaultProxy(seeded.url, plan) as proxy:
        with pytest.raises(Exception) as info:
            client(proxy.url, read_timeout=READ_TIMEOUT).get_parameters_by_path(Path="/app")
        err = info.value
        if isinstance(err, ClientError):
            assert err.response["Error"]["Code"] == expected
            status = 400 if kind == "throttle" else 500
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == status
        else:
            assert type(err).__name__ == expected
        assert proxy.stats()["by_kind"] == {kind: 1}


def _raw_post(url: str) -> tuple[int, str | None, bytes, bool]:
    """One GetParametersByPath over plain HTTP: status, Content-Length, body, cut short?"""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            "POST",
            "/",
            body=json.dumps({"Path": "/app"}),
            headers={
                "X-Amz-Target": "AmazonSSM.GetParametersByPath",
                "Content-Type": "application/x-amz-json-1.1",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/"
                "aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        resp = conn.getresponse()
        try:
            return resp.status, resp.getheader("Content-Length"), resp.read(), False
        except http.client.IncompleteRead as exc:
            return resp.status, resp.getheader("Content-Length"), exc.partial, True
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["truncate", "garbled", "empty"])
def test_malformed_answers_on_the_wire(seeded: MotoServer, kind: str) -> None:
    with FaultProxy(seeded.url) as proxy:
        status, length, whole, cut = _raw_post(proxy.url)
        assert (status, cut) == (200, False)
        assert json.loads(whole)["Parameters"]
        proxy.set_plan(FaultPlan(first_n=1, kinds=(kind,)))
        status, length, body, cut = _raw_post(proxy.url)
        assert status == 200
        assert proxy.stats()["by_kind"] == {kind: 1}
    assert length is not None
    if kind == "truncate":
        assert cut
        assert int(length) > len(body)
        assert body == whole[: len(whole) // 2]
    elif kind == "garbled":
        assert not cut
        assert int(length) == len(body) == len(whole) // 2
    else:
        assert not cut
        assert (length, body) == ("0", b"")


@pytest.mark.parametrize("kind", ["throttle", "500", "reset", "slow"])
def test_each_fault_is_retried_by_botocore(seeded: MotoServer, kind: str) -> None:
    plan = FaultPlan(first_n=1, kinds=(kind,), slow_seconds=SLOW_SECONDS)
    with FaultProxy(seeded.url, plan) as proxy:
        ssm = client(proxy.url, attempts=3, read_timeout=READ_TIMEOUT)
        resp = ssm.get_parameters_by_path(Path="/app")
        assert [p["Name"] for p in resp["Parameters"]] == ["/app/one"]
        assert resp["ResponseMetadata"]["RetryAttempts"] == 1
        stats = proxy.stats()
    assert stats["requests"] == 2
    assert stats["faults"] == 1


def test_garbled_is_read_by_plain_botocore_as_an_empty_result(seeded: MotoServer) -> None:
    """Why the agent checks bodies itself: botocore parses a JSON-protocol body that is not
    JSON as an empty result, without an error; a page loses its parameters and NextToken."""
    with FaultProxy(seeded.url, FaultPlan(first_n=1, kinds=("garbled",))) as proxy:
        resp = client(proxy.url).get_parameters_by_path(Path="/app")
        assert "Parameters" not in resp
        assert "NextToken" not in resp
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert proxy.stats()["by_kind"] == {"garbled": 1}


@pytest.mark.parametrize("service", ["secretsmanager", "kms"])
def test_throttle_is_understood_by_other_json_services(seeded: MotoServer, service: str) -> None:
    from botocore.exceptions import ClientError

    with FaultProxy(seeded.url, FaultPlan(first_n=1)) as proxy:
        c = client(proxy.url, service)
        with pytest.raises(ClientError) as info:
            if service == "kms":
                c.list_keys()
            else:
                c.list_secrets()
        assert info.value.response["Error"]["Code"] == "ThrottlingException"


def test_first_n_cycles_through_kinds_then_forwards(seeded: MotoServer) -> None:
    plan = FaultPlan(first_n=3, kinds=("throttle", "500"))
    with FaultProxy(seeded.url, plan) as proxy:
        resp = client(proxy.url, attempts=5).get_parameters_by_path(Path="/app")
        assert resp["ResponseMetadata"]["RetryAttempts"] == 3
        stats = proxy.stats()
    assert stats["by_kind"] == {"throttle": 2, "500": 1}
    assert stats["forwarded"] == 1


def test_after_forwards_some_requests_before_the_faults(seeded: MotoServer) -> None:
    plan = FaultPlan(after=2, first_n=1, kinds=("500",), targets=("GetParametersByPath",))
    with FaultProxy(seeded.url, plan) as proxy:
        ssm = client(proxy.url)
        ssm.get_parameter(Name="/app/one")  # not a target: neither counted for after nor faulted
        ssm.get_parameters_by_path(Path="/app")
        ssm.get_parameters_by_path(Path="/app")
        with pytest.raises(Exception, match="InternalServerError"):
            ssm.get_parameters_by_path(Path="/app")
        ssm.get_parameters_by_path(Path="/app")
        assert proxy.stats()["faults"] == 1


def test_rate_is_seeded_and_counted_exactly(seeded: MotoServer) -> None:
    from botocore.exceptions import ClientError

    def run() -> list[bool]:
        with FaultProxy(seeded.url, FaultPlan(rate=0.3, seed=7)) as proxy:
            ssm = client(proxy.url)
            outcome = []
            for _ in range(40):
                try:
                    ssm.get_parameters_by_path(Path="/app")
                    outcome.append(True)
                except ClientError:
                    outcome.append(False)
            stats = proxy.stats()
        assert stats["requests"] == 40
        assert stats["faults"] == outcome.count(False)
        return outcome

    first = run()
    assert 4 <= first.count(False) <= 24  # 30% of 40, very loosely
    assert run() == first  # the same seed fails the same requests


def test_targets_limit_faults_to_some_operations(seeded: MotoServer) -> None:
    plan = FaultPlan(rate=1.0, kinds=("500",), targets=("GetParametersByPath",))
    with FaultProxy(seeded.url, plan) as proxy:
        ssm = client(proxy.url)
        assert ssm.get_parameter(Name="/app/one")["Parameter"]["Value"] == "1"
        with pytest.raises(Exception, match="InternalServerError"):
            ssm.get_parameters_by_path(Path="/app")


def test_reset_is_a_tcp_reset(seeded: MotoServer) -> None:
    with FaultProxy(seeded.url, FaultPlan(first_n=1, kinds=("reset",))) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            with pytest.raises(ConnectionResetError):
                while sock.recv(4096):
                    pass


def test_truncate_sends_fewer_bytes_than_announced(seeded: MotoServer) -> None:
    with FaultProxy(seeded.url, FaultPlan(first_n=1, kinds=("truncate",))) as proxy:
        conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=5)
        conn.request("GET", "/moto-api/data.json")  # not counted: forwarded whole
        assert json.loads(conn.getresponse().read()) is not None
        conn.request("GET", "/moto-api/data.json".replace("moto-api", "x"))
        resp = conn.getresponse()
        announced = int(resp.getheader("Content-Length") or 0)
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert 0 <= len(info.value.partial) < announced


def test_slow_waits_before_answering(seeded: MotoServer) -> None:
    with FaultProxy(seeded.url, FaultPlan(first_n=1, kinds=("slow",), slow_seconds=1.0)) as proxy:
        started = time.monotonic()
        client(proxy.url, read_timeout=10).get_parameters_by_path(Path="/app")
        assert time.monotonic() - started >= 1.0


def test_plan_is_validated() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        FaultPlan(kinds=("teapot",))
    with pytest.raises(ValueError, match="http"):
        FaultProxy("https://example.com")


def test_standalone_cli(seeded: MotoServer) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fault_proxy",
            "--upstream",
            seeded.url,
            "--first-n",
            "1",
            "--kinds",
            "500",
        ],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = client(url, attempts=2).get_parameters_by_path(Path="/app")
        assert resp["ResponseMetadata"]["RetryAttempts"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    stats = json.loads(err.strip().splitlines()[-1])
    assert stats["requests"] == 2
    assert stats["by_kind"] == {"500": 1}
