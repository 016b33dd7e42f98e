"""``SECRETS_AGENT_METRICS=emf``: the summary lines as CloudWatch embedded metric format
documents, parsed as the specification says, with figures checked against what happened (the
requests a fault proxy saw, the checks that failed, the restarts)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from secrets_agent.core.printable import MAX_LINE
from secrets_agent.output.logs import Logger
from secrets_agent.output.metrics import Emf
from tests.conftest import base_env, error_line, run_agent
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.moto_server import MotoServer
from tests.support.supervised import Fleet, Supervised, wait_until

CANARY = "emf-canary-51c2"
#: CloudWatch's units (PutMetricData's StandardUnit), written out here independently of the agent.
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}


def emf_document(line: str) -> dict[str, Any]:
    """Parse one log line as an EMF document, asserting every rule of the specification the
    agent's lines touch; return the root object."""
    assert len(line.encode("utf-8")) <= MAX_LINE, "over the 8 KiB line cap"
    root = json.loads(line)
    assert isinstance(root, dict)
    meta = root["_aws"]
    assert isinstance(meta, dict) and set(meta) == {"Timestamp", "CloudWatchMetrics"}
    stamp = meta["Timestamp"]
    assert isinstance(stamp, int) and not isinstance(stamp, bool)
    assert abs(stamp - time.time() * 1000) < 3_600_000, "Timestamp is milliseconds since epoch"
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 1 <= len(namespace) <= 255
        assert not namespace.startswith("AWS/")
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:
                value = root[key]  # a target member of the root
                assert isinstance(value, str) and 0 < len(value) <= 1024
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 0 < len(metrics) <= 100
        for definition in metrics:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            name = definition["Name"]
            assert isinstance(name, str) and 1 <= len(name) <= 1024
            value = root[name]  # a target member of the root
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
            assert definition.get("Unit", "None") in UNITS
    return root


def documents(stderr: str, event: str | None = None) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = emf_document(line)
            if event is None or doc.get("event") == event:
                found.append(doc)
    return found


def metric_names(doc: dict[str, Any]) -> set[str]:
    return {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def dimensions(doc: dict[str, Any]) -> list[list[str]]:
    return [s for d in doc["_aws"]["CloudWatchMetrics"] for s in d["Dimensions"]]


def seed(boto_client: Callable[..., Any], count: int = 23) -> Any:
    ssm = boto_client("ssm")
    for i in range(count):
        ssm.put_parameter(Name=f"/app/prod/key_{i:02d}", Value=f"{CANARY}-{i}", Type="SecureString")
    return ssm


def emf_env(endpoint: str, **extra: str) -> dict[str, str]:
    return base_env(endpoint) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_METRICS": "emf",
        **extra,
    }


def test_the_resolution_line_is_an_emf_document_whose_figures_match_the_proxy(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)
    boto_client("secretsmanager").create_secret(
        Name="app/prod/db", SecretString=json.dumps({"user": "u", "password": CANARY})
    )
    with FaultProxy(moto.url, FaultPlan(first_n=3, kinds=("throttle",))) as proxy:
        env = emf_env(proxy.url, SECRETS_MANAGER_PREFIX="app/prod")
        run = run_agent(tmp_path, env)
        seen = proxy.stats()
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    (doc,) = documents(run.stderr, "secrets resolved")
    assert metric_names(doc) == {
        "SecretsResolved", "ResolutionSeconds", "AwsCalls", "Retries", "ResolutionFailures"
    }
    assert doc["SecretsResolved"] == 23 + 2 == doc["count"]
    assert doc["AwsCalls"] + doc["Retries"] == seen["requests"]
    assert doc["Retries"] == seen["faults"] == 3
    assert doc["ResolutionFailures"] == 0
    assert 0 < doc["ResolutionSeconds"] < 60
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SecretsAgent"
    assert dimensions(doc) == [[]]  # no ECS metadata: no dimension
    units = {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["ResolutionSeconds"] == "Seconds" and units["AwsCalls"] == "Count"
    assert CANARY not in run.stderr


def test_a_failed_resolution_writes_one_metric_line_then_the_error_line(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client, 3)
    with FaultProxy(moto.url) as proxy:
        env = emf_env(proxy.url, PARAMETER_STORE_PREFIX="/app/prod,/app/missing")
        run = run_agent(tmp_path, env)
        seen = proxy.stats()
    assert run.returncode == 66 and not run.ran
    last = error_line(run.stderr)
    assert last.startswith("secrets-agent: not found: ") and "'/app/missing'" in last
    (doc,) = documents(run.stderr)
    assert doc["event"] == "secrets resolution failed" and doc["exit_code"] == 66
    assert doc["ResolutionFailures"] == 1 and doc["SecretsResolved"] == 0
    assert doc["AwsCalls"] + doc["Retries"] == seen["requests"] > 0


def test_metric_lines_are_written_whatever_the_log_level(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client, 2)
    run = run_agent(tmp_path, emf_env(moto.url, SECRETS_AGENT_LOG_LEVEL="error"))
    assert run.returncode == 0, run.stderr
    assert [d["SecretsResolved"] for d in documents(run.stderr)] == [2]
    quiet = run_agent(tmp_path, emf_env(moto.url, SECRETS_AGENT_METRICS="off"))
    assert quiet.returncode == 0 and documents(quiet.stderr) == []
    assert '"secrets resolved"' in quiet.stderr  # the same line, without metrics


class _Metadata(BaseHTTPRequestHandler):
    body: bytes = b"{}"
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[Callable[[dict[str, Any]], tuple[str, list[str]]]]:
    servers: list[ThreadingHTTPServer] = []

    def serve(task: dict[str, Any]) -> tuple[str, list[str]]:
        paths: list[str] = []
        handler = type("Handler", (_Metadata,), {"body": json.dumps(task).encode(), "paths": paths})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v4/abc-123", paths

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_task_family_from_ecs_metadata_is_the_only_dimension(
    tmp_path: Path, moto: MotoServer, boto_client: Any, metadata: Any
) -> None:
    seed(boto_client, 2)
    uri, asked = metadata({"Family": "kptboard-web", "Revision": "7", "Cluster": "c"})
    env = emf_env(moto.url, ECS_CONTAINER_METADATA_URI_V4=uri,
                  SECRETS_AGENT_METRICS_NAMESPACE="kptboard/secrets")
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    (doc,) = documents(run.stderr)
    assert dimensions(doc) == [["TaskFamily"]] and doc["TaskFamily"] == "kptboard-web"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "kptboard/secrets"
    assert asked == ["/v4/abc-123/task"]
    # A Family no task definition can have (here a parameter's name) is no dimension.
    odd, _ = metadata({"Family": "/app/prod/key_00 and more"})
    run = run_agent(tmp_path, emf_env(moto.url, ECS_CONTAINER_METADATA_URI_V4=odd))
    assert run.returncode == 0, run.stderr
    (doc,) = documents(run.stderr)
    assert dimensions(doc) == [[]] and "TaskFamily" not in doc


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"SECRETS_AGENT_METRICS": "prometheus"}, "SECRETS_AGENT_METRICS"),
        ({"SECRETS_AGENT_METRICS_NAMESPACE": "AWS/Secrets"}, "SECRETS_AGENT_METRICS_NAMESPACE"),
        ({"SECRETS_AGENT_METRICS_NAMESPACE": "a*b"}, "SECRETS_AGENT_METRICS_NAMESPACE"),
        ({"SECRETS_AGENT_LOG_FORMAT": "text"}, "SECRETS_AGENT_METRICS=emf"),
    ],
)
def test_bad_metric_settings_are_78(tmp_path: Path, extra: dict[str, str], variable: str) -> None:
    run = run_agent(tmp_path, emf_env("http://127.0.0.1:9", **extra))
    assert run.returncode == 78 and not run.ran
    assert variable in error_line(run.stderr)


def test_a_long_summary_line_keeps_its_metrics_under_the_cap() -> None:
    stream = io.StringIO()
    log = Logger(level="info", fmt="json", stream=stream)
    emf = Emf("SecretsAgent", (("TaskFamily", "kptboard-web"),))
    names = [f"VARIABLE_NUMBER_{i:05d}_WITH_A_LONG_NAME" for i in range(2000)]
    emf.write(log, "info", "secrets resolved", {"SecretsResolved": 2000, "AwsCalls": 201},
              names=names, count=2000)
    line = stream.getvalue().rstrip("\n")
    doc = emf_document(line)
    assert doc["SecretsResolved"] == 2000 and doc["AwsCalls"] == 201
    assert doc["names_omitted"] > 0 and len(doc["names"]) < 2000


@pytest.fixture
def supervised(moto: MotoServer, tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    fleet = Fleet(tmp_path)
    extra = {"SECRETS_AGENT_WATCH_INTERVAL": "1", "SECRETS_AGENT_STOP_TIMEOUT": "3"}
    yield lambda env, *report: fleet.start(env | extra, *report)
    fleet.close()


def test_supervise_mode_counts_checks_failed_checks_changes_and_restarts(
    supervised: Callable[..., Supervised], moto: MotoServer, boto_client: Any
) -> None:
    ssm = seed(boto_client, 2)
    sup = supervised(emf_env(moto.url), "KEY_00")

    def docs(event: str) -> list[dict[str, Any]]:
        return documents(sup.stderr(), event)

    wait_until(lambda: docs("secrets checked"), timeout=20, what="a quiet check")
    quiet = docs("secrets checked")[0]
    assert metric_names(quiet) == {"Checks", "FailedChecks", "ChangesSeen"}
    assert (quiet["Checks"], quiet["FailedChecks"], quiet["ChangesSeen"]) == (1, 0, 0)
    assert quiet["level"] == "info"  # written at the default level, unlike without metrics

    # A collision under the prefix: the check fails, the command is kept.
    ssm.put_parameter(Name="/app/prod/key.00", Value="x", Type="String")
    wait_until(lambda: docs("secrets check failed; command kept"), timeout=20, what="a failure")
    failed = docs("secrets check failed; command kept")[0]
    assert (failed["Checks"], failed["FailedChecks"], failed["ChangesSeen"]) == (1, 1, 0)
    ssm.delete_parameter(Name="/app/prod/key.00")

    # A new value: one change seen, one restart.
    ssm.put_parameter(Name="/app/prod/key_00", Value="new", Type="SecureString", Overwrite=True)
    assert sup.wait_line("env KEY_00", count=2, timeout=20) == "env KEY_00=new"
    wait_until(lambda: docs("command restarted"), timeout=10, what="the restart line")
    (changed,) = docs("secrets changed")
    assert (changed["Checks"], changed["FailedChecks"], changed["ChangesSeen"]) == (1, 0, 1)
    (restarted,) = docs("command restarted")
    assert metric_names(restarted) == {"Restarts"} and restarted["Restarts"] == 1
    # Every check wrote exactly one metric line; the failures counted are the failures logged.
    assert sup.terminate() == 3
    all_docs = documents(sup.stderr())
    checks = [d for d in all_docs if "Checks" in d]
    assert sum(d["FailedChecks"] for d in checks) == len(docs("secrets check failed; command kept"))
    assert sum(d["ChangesSeen"] for d in checks) == 1
    assert all(dimensions(d) == [[]] for d in all_docs)
    assert CANARY not in sup.stderr()
