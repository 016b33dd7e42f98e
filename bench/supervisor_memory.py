#!/usr/bin/env python3
"""Supervise mode's standing cost: resident memory of the idle supervisor, and the cost of
one change check (wall time, CPU time, API calls), on a local moto server.

    python3 bench/supervisor_memory.py [--params 30] [--seconds 8] [--rounds 3]

Scenarios, interleaved round by round: the agent supervising with an SSM path prefix loaded
(checked every second) in restart, exit and redeploy modes (redeploy: an ECS service of one
task on moto, named by SECRETS_AGENT_ECS_CLUSTER/SERVICE), the same plus a Secrets Manager
prefix, the agent as a plain init
(nothing loaded, no AWS SDK imported), and ``tini -s`` for reference. The command is
``sleep``. API calls are counted by a pass-through proxy in front of moto; check times come
from the agent's own debug events.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import REGION, base_env  # noqa: E402
from tests.support.fault_proxy import FaultProxy  # noqa: E402
from tests.support.moto_server import start_moto  # noqa: E402
from tests.support.supervised import SHORT_INTERVAL_ENTRYPOINT  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and of the children it has waited for (check processes)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def seed(url: str, count: int, secrets: int) -> None:
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto test credentials
        )

    ssm = client("ssm")
    for i in range(count):
        ssm.put_parameter(
            Name=f"/bench/prod/value_{i:03d}", Value=f"v{i}-" + "x" * 60, Type="SecureString"
        )
    ecs = client("ecs")
    ecs.create_cluster(clusterName="bench")
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}]
    )
    ecs.create_service(
        cluster="bench",
        serviceName="web",
        taskDefinition="app",
        desiredCount=1,
        launchType="FARGATE",
    )
    sm = client("secretsmanager")
    for i in range(secrets):
        sm.create_secret(
            Name=f"bench/prod/secret_{i:02d}",
            SecretString=json.dumps({"user": f"u{i}", "password": "p" * 32}),
        )


def wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} not seen in {path}: {path.read_text(errors='replace')[-2000:]}")


def run_one(kind: str, proxy: FaultProxy, seconds: float, tmp: Path) -> dict[str, Any]:
    env = base_env(proxy.url)
    env.update(SECRETS_AGENT_LOG_FORMAT="json", SECRETS_AGENT_LOG_LEVEL="debug")
    command = ["sleep", "600"]
    if kind == "tini":
        argv = ["tini", "-s", "--", *command]
    else:
        # A check every second (the tests' wrapper lowers the 30 s floor) makes a check's
        # cost visible within a few seconds.
        argv = [sys.executable, str(SHORT_INTERVAL_ENTRYPOINT), *command]
        env["SECRETS_AGENT_WATCH_INTERVAL"] = "600" if kind == "agent-plain-init" else "1"
        if kind in ("agent+ssm", "agent+ssm+sm", "agent+ssm exit", "agent+ssm redeploy"):
            env["PARAMETER_STORE_PREFIX"] = "/bench/prod"
        if kind == "agent+ssm exit":
            env["SECRETS_AGENT_ON_CHANGE"] = "exit"
        if kind == "agent+ssm redeploy":
            env.update(
                SECRETS_AGENT_ON_CHANGE="redeploy",
                SECRETS_AGENT_ECS_CLUSTER="bench",
                SECRETS_AGENT_ECS_SERVICE="web",
            )
        if kind == "agent+ssm+sm":
            env["SECRETS_MANAGER_PREFIX"] = "bench/prod"
    log = tmp / f"{kind}-{time.monotonic_ns()}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=fh)
    try:
        if kind == "tini":
            time.sleep(0.5)
        else:
            wait_for(log, '"command started"')
        proxy.reset_counters()
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        rss, hwm = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        requests = int(proxy.stats()["requests"])  # type: ignore[call-overload]
        by_target = proxy.stats()["by_target"]
    finally:
        proc.terminate()
        proc.wait(10)
    took = []
    peaks = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "secrets checked" and "took" in event:
                took.append(float(event["took"]))
            if event.get("event") == "check process" and event.get("kind") == "check":
                peaks.append(int(event["peak_kb"]))
    return {
        "kind": kind,
        "rss_kb": rss,
        "hwm_kb": hwm,
        "cpu_per_s": (cpu1 - cpu0) / (t1 - t0),
        "checks": len(took),
        "check_ms": statistics.median(took) * 1000 if took else None,
        # The check's peak: the supervisor's own high-water mark, or a check process's.
        "peak_kb": max([hwm, *peaks]),
        "requests": requests,
        "seconds": t1 - t0,
        "by_target": by_target,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=int, default=30)
    parser.add_argument("--secrets", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kinds = [
        "agent+ssm",
        "agent+ssm exit",
        "agent+ssm redeploy",
        "agent+ssm+sm",
        "agent-plain-init",
    ] + (["tini"] if shutil.which("tini") else [])
    server = start_moto()
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    try:
        seed(server.url, args.params, args.secrets)
        with FaultProxy(server.url) as proxy, tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for kind in kinds:
                    results[kind].append(run_one(kind, proxy, args.seconds, Path(tmp)))
    finally:
        server.stop()

    print(
        f"{args.params} SSM SecureStrings under one path (+{args.secrets} Secrets Manager JSON "
        f"secrets for agent+ssm+sm), interval 1 s, {args.rounds} rounds of "
        f"{args.seconds:.0f} s idle each, medians"
    )
    print(
        f"{'supervisor':<18}{'VmRSS MiB':>10}{'peak MiB':>10}{'CPU %':>8}"
        f"{'checks':>8}{'ms/check':>10}{'CPU ms/check':>13}{'calls/check':>12}"
    )
    for kind in kinds:
        rows = results[kind]
        med = {k: statistics.median(r[k] for r in rows) for k in ("rss_kb", "peak_kb", "cpu_per_s")}
        cpu = sum(r["cpu_per_s"] * r["seconds"] for r in rows)
        checks = sum(r["checks"] for r in rows)
        calls = sum(r["requests"] for r in rows)
        times = [r["check_ms"] for r in rows if r["check_ms"] is not None]
        print(
            f"{kind:<18}{med['rss_kb'] / 1024:>10.1f}{med['peak_kb'] / 1024:>10.1f}"
            f"{med['cpu_per_s'] * 100:>8.2f}{checks:>8}"
            f"{(statistics.median(times) if times else float('nan')):>10.1f}"
            f"{(cpu / checks * 1000 if checks else float('nan')):>13.1f}"
            f"{(calls / checks if checks else 0):>12.2f}"
        )
    for kind in ("agent+ssm", "agent+ssm+sm"):
        print(f"API calls in the idle windows of {kind}:", [r["by_target"] for r in results[kind]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
