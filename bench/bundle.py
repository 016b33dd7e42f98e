#!/usr/bin/env python3
"""What the agent bundle costs against the virtualenv route: bytes added to an image, and
whole-process start-up on the fast path, with no prefix and with 10 parameters.

On the host (needs docker, debootstrap and the test virtualenv):

    python3 bench/bundle.py --runs 30

builds the test bases and the agent image (tests/support/image_support.py), then
bench/bundle.Dockerfile
(the virtualenv route and the bundle in one image on a base without Python), reads each layer's
size with ``docker history``, starts a moto server, seeds 10 SSM parameters and runs this file
again inside that image (``--inside``) with ``--network host``. Inside, both entrypoints start
``/bin/true``, interleaved, ``--runs`` times each at each count; wall time is measured around the
whole process (spawn to exit). The figures go to stdout as JSON; docs/install.md has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/bench/bundle"
COUNT = 10
ENTRYPOINTS = {
    "virtualenv": ["/opt/venv/bin/docker-entrypoint.py"],
    "bundle": ["/opt/secrets-agent/docker-entrypoint"],
}


def inside(moto_url: str, runs: int) -> dict[str, object]:
    base = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": moto_url,
        "SECRETS_AGENT_LOG_LEVEL": "warning",
    }
    # no_prefix sets a SECRETS_AGENT_ setting, so the agent reads its settings (it imports the
    # cli, not the AWS SDK); fast_path has no agent variable at all (the no-prefix fast path).
    fast = {k: v for k, v in base.items() if not k.startswith("SECRETS_AGENT_")}
    cases = {
        "fast_path": fast,
        "no_prefix": base,
        "params_10": base | {"PARAMETER_STORE_PREFIX": PREFIX},
    }
    times: dict[str, dict[str, list[float]]] = {c: {e: [] for e in ENTRYPOINTS} for c in cases}
    cpu: dict[str, dict[str, list[float]]] = {c: {e: [] for e in ENTRYPOINTS} for c in cases}
    for env in cases.values():  # once untimed: the page cache, and a check that it works
        for argv in ENTRYPOINTS.values():
            subprocess.run([*argv, "/bin/true"], env=env, check=True)
    for i in range(runs):
        for case, env in cases.items():
            order = list(ENTRYPOINTS.items())
            if i % 2:
                order.reverse()
            for name, argv in order:
                before, started = os.times(), time.perf_counter()
                subprocess.run([*argv, "/bin/true"], env=env, check=True)
                times[case][name].append(time.perf_counter() - started)
                after = os.times()
                cpu[case][name].append(
                    after.children_user - before.children_user
                    + after.children_system - before.children_system
                )
    out: dict[str, object] = {"runs": runs}
    for case, by_name in times.items():
        medians = {name: statistics.median(values) for name, values in by_name.items()}
        cpus = {name: statistics.mean(values) for name, values in cpu[case].items()}
        out[case] = {
            **{f"{name}_median_ms": round(m * 1000, 1) for name, m in medians.items()},
            "bundle_over_virtualenv": round(medians["bundle"] / medians["virtualenv"], 3),
            **{f"{name}_mean_cpu_ms": round(c * 1000, 1) for name, c in cpus.items()},
            "bundle_over_virtualenv_cpu": round(cpus["bundle"] / cpus["virtualenv"], 3),
        }
    return out


def host(runs: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from tests.support.image_support import (
        AGENT_TAG,
        NO_PYTHON_PACKAGES,
        build_agent,
        build_base,
        docker,
        image_bytes,
        proxy_args,
    )
    from tests.support.moto_server import start_moto

    python_base, _ = build_base()
    base, _ = build_base(NO_PYTHON_PACKAGES)
    build_agent(python_base)
    tag = "secrets-agent-bench-bundle:latest"
    docker(
        "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"AGENT_IMAGE={AGENT_TAG}", *proxy_args(),
        "-f", str(ROOT / "bench" / "bundle.Dockerfile"), "-t", tag, str(ROOT), timeout=1800,
    )  # fmt: skip
    history = docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", tag)
    layers = [line.split("\t", 1) for line in history.stdout.splitlines()][:4]
    du = docker(
        "run", "--rm", "--entrypoint", "du", tag, "-sb", "/opt/venv", "/opt/secrets-agent",
        "/opt/venv/lib/python3.11/site-packages/pip",
        "/opt/venv/lib/python3.11/site-packages/setuptools",
    ).stdout  # fmt: skip
    result: dict[str, object] = {
        "base_image_bytes": image_bytes(base),
        "bench_image_bytes": image_bytes(tag),
        "agent_image_bytes": image_bytes(AGENT_TAG),
        "layers_newest_first": [[size, created[:90]] for size, created in layers],
        "du_bytes": {path: int(n) for n, path in (line.split("\t") for line in du.splitlines())},
    }
    moto = start_moto()
    try:
        import boto3

        ssm = boto3.client(
            "ssm", region_name="us-east-1", endpoint_url=moto.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
        )  # fmt: skip
        for n in range(COUNT):
            ssm.put_parameter(
                Name=f"{PREFIX}/value_{n:02d}", Value=f"v{n}", Type="SecureString", Overwrite=True
            )
        proc = docker(
            "run", "--rm", "--network", "host", "-v", f"{ROOT / 'bench'}:/bench:ro",
            "--entrypoint", "/opt/venv/bin/python", tag, "/bench/bundle.py", "--inside",
            "--moto-url", moto.url, "--runs", str(runs), timeout=3600,
        )  # fmt: skip
        result["startup"] = json.loads(proc.stdout)
    finally:
        moto.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--moto-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        result = inside(args.moto_url, args.runs)
    else:
        result = host(args.runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
