#!/usr/bin/env python3
"""Start-up benchmark: the agent against the old shell entrypoint, plain boto3 and bare Python.

Every approach runs against one moto server on 127.0.0.1, interleaved (one round runs every
approach once at every count, in a rotating order), with the same child command
(``/bin/true``). Wall time is measured around ``posix_spawn`` + ``wait4``; peak memory is the
``ru_maxrss`` of the child as GNU ``time`` reports it (from ``wait4``), which covers the
process across ``exec`` and the children it reaped (the shell's ``aws`` processes). Each
approach is first run once, untimed, with a checker as its child, to prove that it exported
exactly the expected variables.

    python3 bench/run.py                      # full run, writes bench/results.md, chart.png
    python3 bench/run.py --counts 1 --runs 1 --no-chart --out /tmp/x   # smoke

Every Python command (agent, plain boto3, floor, and the ``aws`` CLI through ``PATH``) runs on
the real interpreter, ``sys.executable`` resolved, never a version-manager shim.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = os.path.realpath(sys.executable)
ENTRYPOINT = ROOT / "docker" / "docker-entrypoint.py"
APPROACHES = ("floor", "agent", "plain_boto3", "shell")
CHILD = ["/bin/true"]
# Runs of the shell approach per count: at about 0.5 s per secret, 200 secrets take ~100 s.
DEFAULT_SHELL_RUNS = {0: 5, 1: 5, 10: 3, 50: 1, 200: 1}
# The shell's loop is the same at any count; verifying it at 50 and 200 would cost ~2 min.
SHELL_VERIFY_MAX = 10
CHECKER = (
    "import hashlib, os, sys\n"
    "n = int(sys.argv[1])\n"
    "want = {f'PARAM_{i:03d}': hashlib.sha256(f'bench/{n}/{i}'.encode()).hexdigest()"
    " for i in range(n if n else 0)}\n"
    "got = {k: v for k, v in os.environ.items() if k.startswith('PARAM_')}\n"
    "bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))\n"
    "sys.exit(f'{len(bad)} variables wrong or missing, e.g. {bad[:3]}' if bad else 0)\n"
)


def value_for(count: int, index: int) -> str:
    """A deterministic 64-character value, so the checker can recompute it."""
    return hashlib.sha256(f"bench/{count}/{index}".encode()).hexdigest()


def prefix_for(count: int) -> str:
    return f"/bench/p{count}" if count else ""


# --- moto ---------------------------------------------------------------------------------


@contextmanager
def moto_server(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def seed(url: str, counts: Sequence[int]) -> None:
    import boto3

    ssm = boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
    )
    for count in counts:
        for i in range(count):
            ssm.put_parameter(
                Name=f"{prefix_for(count)}/param-{i:03d}",
                Value=value_for(count, i),
                Type="SecureString",
                Overwrite=True,
            )


# --- commands -----------------------------------------------------------------------------


def base_env(url: str) -> dict[str, str]:
    return {
        # The real interpreter's directory first: `python3` and `aws` resolve without a shim.
        "PATH": f"{Path(PY).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL": url,
    }


def command(
    approach: str, count: int, env: dict[str, str], child: list[str], *, agent: Path = ENTRYPOINT
) -> tuple[list[str], dict[str, str]]:
    env = dict(env)
    if count:
        env["PARAMETER_STORE_PREFIX"] = prefix_for(count)
    if approach == "floor":
        return [PY, "-c", "pass"], env
    if approach == "agent":
        env["PYTHONPATH"] = str(agent.parent.parent)
        return [PY, str(agent), *child], env
    if approach == "plain_boto3":
        return [PY, str(BENCH / "plain_boto3.py"), *child], env
    if approach == "shell":
        env["BENCH_COUNT"] = str(count)
        return ["/bin/bash", str(BENCH / "old-entrypoint.sh"), *child], env
    raise ValueError(approach)


def run_once(argv: list[str], env: dict[str, str], errlog: str) -> tuple[float, int, float, int]:
    """Wall seconds, peak RSS in KiB, CPU seconds (user + system), exit status of one run.

    The command runs under GNU ``time``: a child forked from this (large) process would start
    with our own resident pages counted in its high-water mark, one forked from ``time`` does
    not. ``time`` costs the same ~1 ms in every approach's figure.
    """
    rssfile = errlog + ".rss"
    full = ["/usr/bin/time", "-f", "%M", "-o", rssfile, "--", *argv]
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, errlog, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(full[0], full, env, file_actions=actions, setpgroup=0)
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        os.killpg(pid, signal.SIGKILL)  # an interrupted bench leaves no `aws` loop behind
        os.waitpid(pid, 0)
        raise
    elapsed = time.perf_counter() - start
    lines = Path(rssfile).read_text(encoding="utf-8").split()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    cpu = usage.ru_utime + usage.ru_stime  # includes what `time` reaped: the whole tree
    return elapsed, rss, cpu, os.waitstatus_to_exitcode(status)


def fail(what: str, code: int, errlog: str) -> None:
    tail = Path(errlog).read_text(encoding="utf-8", errors="replace")[-2000:]
    raise SystemExit(f"{what} exited {code}:\n{tail}")


def verify(
    approaches: Sequence[str],
    counts: Sequence[int],
    env: dict[str, str],
    errlog: str,
    *,
    agent: Path,
) -> None:
    """Untimed: each approach must hand the child exactly the expected variables."""
    for count in counts:
        for approach in approaches:
            if approach == "floor" or (approach == "shell" and count > SHELL_VERIFY_MAX):
                continue
            argv, cenv = command(approach, count, env, [PY, "-c", CHECKER, str(count)], agent=agent)
            *_, code = run_once(argv, cenv, errlog)
            if code != 0:
                fail(f"verification of {approach} with {count} parameters", code, errlog)


def rounds_for(runs: int, shell_runs: int) -> set[int]:
    """Spread ``shell_runs`` of ``runs`` rounds evenly, so the slow approach stays interleaved."""
    return {round(i * runs / shell_runs) for i in range(min(shell_runs, runs))}


def measure(args: argparse.Namespace, env: dict[str, str], errlog: str) -> dict[str, Any]:
    samples: dict[str, dict[str, list[list[float]]]] = {
        a: {str(c): [] for c in args.counts} for a in args.approaches
    }
    shell_rounds = {c: rounds_for(args.runs, args.shell_runs.get(c, 1)) for c in args.counts}
    for r in range(args.runs):
        order = list(args.approaches[r % len(args.approaches) :]) + list(
            args.approaches[: r % len(args.approaches)]
        )
        for count in args.counts:
            for approach in order:
                if approach == "shell" and r not in shell_rounds[count]:
                    continue
                argv, cenv = command(approach, count, env, CHILD, agent=args.agent)
                wall, rss, cpu, code = run_once(argv, cenv, errlog)
                if code != 0:
                    fail(f"{approach} with {count} parameters", code, errlog)
                samples[approach][str(count)].append([wall, rss, cpu])
        print(f"round {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
    return samples


def idle_rss(approach: str, count: int, env: dict[str, str], *, agent: Path) -> dict[str, int]:
    """VmRSS/VmHWM (KiB) of a process that stays up after loading: the agent in supervise
    mode, the plain boto3 script holding, or a bare interpreter."""
    ready = ["/bin/sh", "-c", "echo ready; exec sleep 600"]
    if approach == "floor":
        argv = [PY, "-c", "import signal; print('ready', flush=True); signal.pause()"]
        cenv = dict(env)
    else:
        argv, cenv = command(approach, count, env, ready, agent=agent)
    if approach == "agent":
        cenv["SECRETS_AGENT_WATCH_INTERVAL"] = "3600"
    if approach == "plain_boto3":
        cenv["BENCH_HOLD"] = "1"
    proc = subprocess.Popen(argv, env=cenv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"{approach} did not start its command in supervise/hold mode")
        time.sleep(0.5)
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0])
        return fields
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def versions() -> dict[str, str]:
    out = subprocess.run(
        [PY, "-c", "import boto3, botocore; print(boto3.__version__, botocore.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    aws = subprocess.run(
        [str(Path(PY).parent / "aws"), "--version"], capture_output=True, text=True, check=False
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "python": f"{PY} ({platform.python_version()})",
        "boto3": out[0],
        "botocore": out[1],
        "aws_cli": (aws.stdout or aws.stderr).strip(),
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--counts", default="0,1,10,50,200", help="parameter counts; 0 = no prefix")
    p.add_argument("--runs", type=int, default=15, help="timed runs per approach and count")
    p.add_argument(
        "--shell-runs",
        default=",".join(f"{k}:{v}" for k, v in DEFAULT_SHELL_RUNS.items()),
        help="COUNT:RUNS pairs for the old shell entrypoint (capped: it is slow)",
    )
    p.add_argument("--approaches", default=",".join(APPROACHES))
    p.add_argument("--moto-url", default=os.environ.get("MOTO_URL"))
    p.add_argument(
        "--out", type=Path, default=BENCH, help="directory for results.md/json, chart.png"
    )
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--no-idle", action="store_true", help="skip the supervise-mode memory probe")
    p.add_argument(
        "--agent",
        type=Path,
        default=ENTRYPOINT,
        help="the agent's docker-entrypoint.py (e.g. of a `git archive` snapshot)",
    )
    args = p.parse_args(argv)
    args.counts = [int(c) for c in args.counts.split(",")]
    args.approaches = [a for a in args.approaches.split(",") if a]
    args.shell_runs = {
        int(k): int(v) for k, v in (s.split(":") for s in args.shell_runs.split(",") if s)
    }
    unknown = set(args.approaches) - set(APPROACHES)
    if unknown:
        p.error(f"unknown approaches: {sorted(unknown)}")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: the running child and moto are stopped


def main(argv: Sequence[str] | None = None) -> int:
    from bench.report import write_outputs

    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    print(f"interpreter for every Python command: {PY}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    found = versions()  # before the runs: the commit that was measured
    with tempfile.TemporaryDirectory() as tmp, moto_server(args.moto_url) as url:
        errlog = str(Path(tmp) / "stderr")
        seed(url, [c for c in args.counts if c])
        env = base_env(url)
        verify(args.approaches, args.counts, env, errlog, agent=args.agent)
        samples = measure(args, env, errlog)
        idle: dict[str, dict[str, int]] = {}
        if not args.no_idle:
            for approach in ("floor", "agent", "plain_boto3"):
                if approach in args.approaches:
                    idle[approach] = idle_rss(
                        approach,
                        10 if 10 in args.counts else max(args.counts),
                        env,
                        agent=args.agent,
                    )
    found["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {
        "versions": found,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "counts": args.counts,
        "approaches": args.approaches,
        "samples": samples,
        "idle": idle,
    }
    write_outputs(result, args.out, chart=not args.no_chart)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
