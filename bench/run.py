#!/usr/bin/env python3
"""Start-up benchmark: the agent against plain boto3, a compiled anchor, bare Python and the old
shell entrypoint, each run the way an image runs it.

Every Python approach runs in a virtualenv built from ``requirements/runtime.lock`` (the lock
the image installs), with the agent in its site-packages and ``docker-entrypoint.py`` started
through its shebang, as the Dockerfile installs it. The ``aws`` CLI of the old shell entrypoint
and matplotlib for the chart live in a second virtualenv, from ``requirements/bench.lock``.
Both are built once under ``.venv-bench/`` and reused while their lock and base interpreter
are unchanged. The compiled anchor (``bench/go/main.go``, Go and Debian's aws-sdk-go) is built
by every run and never committed.

All approaches run against one moto server on 127.0.0.1, interleaved (one round runs every
approach once at every count, in a rotating order), with the same child command
(``/bin/true``). Wall time is measured around ``posix_spawn`` + ``wait4``; peak memory is the
``ru_maxrss`` of the child as GNU ``time`` reports it. Each approach is first run once,
untimed, with a checker as its child, to prove that it exported exactly the expected variables.

    python3 bench/run.py            # full run: bench/results.*, chart.png, docs/performance.md
    python3 bench/run.py --counts 0,1 --runs 1 --no-chart --out /tmp/x   # smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
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
ENTRYPOINT = ROOT / "docker" / "docker-entrypoint.py"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
BENCH_LOCK = ROOT / "requirements" / "bench.lock"
APPROACHES = ("floor", "botocore", "agent", "plain_boto3", "go", "shell")
CHILD = ["/bin/true"]
# Runs of the shell approach per count: at about 0.5 s per secret, 200 secrets take ~100 s.
DEFAULT_SHELL_RUNS = {0: 5, 1: 5, 10: 3, 50: 1, 200: 1}
# The shell's loop is the same at any count; verifying it at 50 and 200 would cost ~2 min.
SHELL_VERIFY_MAX = 10
# Other processes' share of the machine's CPU time during the run above which it was "busy".
BUSY_SHARE = 0.15
GO_PACKAGES = "golang-go golang-github-aws-aws-sdk-go-dev"
CHECKER = (
    "import hashlib, os, sys\n"
    "n = int(sys.argv[1])\n"
    "want = {f'PARAM_{i:03d}': hashlib.sha256(f'bench/{n}/{i}'.encode()).hexdigest()"
    " for i in range(n if n else 0)}\n"
    "got = {k: v for k, v in os.environ.items() if k.startswith('PARAM_')}\n"
    "bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))\n"
    "sys.exit(f'{len(bad)} variables wrong or missing, e.g. {bad[:3]}' if bad else 0)\n"
)
SEEDER = (
    "import hashlib, sys, boto3\n"
    "ssm = boto3.client('ssm', region_name='us-east-1', endpoint_url=sys.argv[1],"
    " aws_access_key_id='testing', aws_secret_access_key='testing')\n"
    "for n in map(int, sys.argv[2:]):\n"
    "    for i in range(n):\n"
    "        ssm.put_parameter(Name=f'/bench/p{n}/param-{i:03d}', Type='SecureString',"
    " Overwrite=True, Value=hashlib.sha256(f'bench/{n}/{i}'.encode()).hexdigest())\n"
)
PROBE = (
    "import json, sys, sysconfig\n"
    "try:\n"
    "    import boto3, botocore\n"
    "    found = boto3.__version__, botocore.__version__\n"
    "except ImportError:\n"
    "    found = None, None\n"
    "print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix,"
    " 'base_prefix': sys.base_prefix, 'site_packages': sysconfig.get_paths()['purelib'],"
    " 'version': sys.version.split()[0], 'boto3': found[0], 'botocore': found[1]}))\n"
)


def prefix_for(count: int) -> str:
    return f"/bench/p{count}" if count else ""


def refuse(message: str) -> SystemExit:
    return SystemExit(f"bench/run.py: refusing to run: {message}")


def is_shim(path: str | Path) -> bool:
    """A version manager's shim (pyenv, asdf, ...): a script that picks an interpreter per
    directory and adds its own start-up to every run."""
    return "shims" in Path(path).parts


# --- the environments ---------------------------------------------------------------------


def default_base_python() -> str:
    """Debian's python3 when there is one (the image's `python3 -m venv` uses it), else the
    interpreter this script runs on (the base of its venv, if it is in one)."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    return str(getattr(sys, "_base_executable", sys.executable))


def _run(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit(f"bench/run.py: {what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def ensure_venv(path: Path, lock: Path, base: str) -> Path:
    """Build ``path`` from ``lock`` (hashes required, no resolution) unless it was built from
    the same lock with the same base interpreter; return its ``bin/python3``."""
    if is_shim(base):
        raise refuse(f"{base} is a version-manager shim; pass --base-python /path/to/python3")
    real = os.path.realpath(base)
    stamp = hashlib.sha256(lock.read_bytes() + real.encode()).hexdigest()
    python = path / "bin" / "python3"
    stamp_file = path / ".bench-stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return python
    print(f"building {path} from {lock.name} on {real} ...", file=sys.stderr, flush=True)
    shutil.rmtree(path, ignore_errors=True)
    _run([real, "-m", "venv", str(path)], f"python3 -m venv {path}")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(lock),
        ],
        f"installing {lock.name} into {path}",
    )
    stamp_file.write_text(stamp)
    return python


def install_agent(python: Path, agent_entrypoint: Path) -> Path:
    """Put the agent where the image has it: its package in site-packages (a link to this
    checkout, so the current code is measured) and the entrypoint in bin/ with the venv's
    interpreter as its shebang (the Dockerfile's sed). Return the installed entrypoint."""
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "locating site-packages",
    ).stdout.strip()
    link = Path(purelib) / "secrets_agent"
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise refuse(f"{link} is an installed agent; measure a venv without one")
    link.symlink_to(
        agent_entrypoint.resolve().parent.parent / "secrets_agent", target_is_directory=True
    )
    installed = python.parent / "docker-entrypoint.py"
    lines = agent_entrypoint.read_text(encoding="utf-8").splitlines(keepends=True)
    installed.write_text(f"#!{python}\n" + "".join(lines[1:]), encoding="utf-8")
    installed.chmod(0o755)
    return installed


def build_go(out: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            f"bench/run.py: the Go anchor needs `apt-get install {GO_PACKAGES}`"
            " (or leave it out: --approaches without go)"
        )
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "ssm-exec"
    env = {
        **os.environ,
        "GOPATH": "/usr/share/gocode",  # where Debian's golang-*-dev packages put the sources
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
    }
    _run([go, "build", "-o", str(binary), "."], "go build bench/go", cwd=BENCH / "go", env=env)
    return binary


class Setup:
    """Where every approach's program lives, checked before anything is measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        venvs: Path = args.venvs
        self.info: dict[str, Any] = {}
        if args.venv is not None:
            self.python = Path(args.venv) / "bin" / "python3"
        else:
            self.python = ensure_venv(venvs / "runtime", RUNTIME_LOCK, args.base_python)
        self.info = json.loads(_run([str(self.python), "-c", PROBE], "probing the venv").stdout)
        if is_shim(self.info["executable"]) or is_shim(self.python):
            raise refuse(f"{self.python} runs through a version-manager shim")
        if self.info["prefix"] == self.info["base_prefix"]:
            raise refuse(
                f"{self.python} is the global site-packages ({self.info['prefix']}), not a venv"
            )
        if self.info["boto3"] is None:
            raise refuse(f"{self.python} has no boto3: not a venv of requirements/runtime.lock")
        self.entrypoint = install_agent(self.python, args.agent)
        self.path = f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin"
        found = shutil.which("python3", path=self.path)
        if found is None or is_shim(found) or Path(found).parent != self.python.parent:
            raise refuse(f"python3 on the approaches' PATH is {found}, not {self.python}")
        self.tools: Path | None = None
        if "shell" in args.approaches or not args.no_chart:
            self.tools = ensure_venv(venvs / "tools", BENCH_LOCK, args.base_python)
        self.go = build_go(venvs / "go") if "go" in args.approaches else None

    def describe(self) -> dict[str, str]:
        aws = ""
        if self.tools is not None:
            p = subprocess.run(
                [str(self.tools.parent / "aws"), "--version"], capture_output=True, text=True
            )
            aws = (p.stdout or p.stderr).strip()
        go = ""
        if self.go is not None:
            go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
        return {
            "python": f"{self.python} ({self.info['version']})",
            "interpreter": self.info["executable"],
            "base_prefix": self.info["base_prefix"],
            "site_packages": self.info["site_packages"],
            "entrypoint": str(self.entrypoint),
            "boto3": self.info["boto3"],
            "botocore": self.info["botocore"],
            "aws_cli": aws,
            "go": go,
        }


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
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
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
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "bench/run.py: no moto server: install moto[server] for this"
                        " interpreter (requirements/test.lock) or pass --moto-url"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


# --- commands -----------------------------------------------------------------------------


def base_env(url: str) -> dict[str, str]:
    return {
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",  # aws-sdk-go v1 reads only this one without a config file
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL": url,
    }


def command(
    setup: Setup, approach: str, count: int, env: dict[str, str], child: list[str]
) -> tuple[list[str], dict[str, str]]:
    env = {**env, "PATH": setup.path}
    if count:
        env["PARAMETER_STORE_PREFIX"] = prefix_for(count)
    py = str(setup.python)
    if approach == "floor":
        return [py, "-c", "pass"], env
    if approach == "botocore":
        return [py, "-c", "import botocore.session"], env
    if approach == "agent":
        return [str(setup.entrypoint), *child], env
    if approach == "plain_boto3":
        return [py, str(BENCH / "plain_boto3.py"), *child], env
    if approach == "go":
        assert setup.go is not None
        return [str(setup.go), *child], env
    if approach == "shell":
        assert setup.tools is not None
        env["PATH"] = f"{setup.tools.parent}:{env['PATH']}"
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
    setup: Setup, approaches: Sequence[str], counts: Sequence[int], env: dict[str, str], errlog: str
) -> None:
    """Untimed: each approach must hand the child exactly the expected variables. (This run
    also writes the bytecode caches that an installed image has.)"""
    checker = [str(setup.python), "-c", CHECKER]
    for count in counts:
        for approach in approaches:
            if approach in ("floor", "botocore") or (
                approach == "shell" and count > SHELL_VERIFY_MAX
            ):
                continue
            argv, cenv = command(setup, approach, count, env, [*checker, str(count)])
            *_, code = run_once(argv, cenv, errlog)
            if code != 0:
                fail(f"verification of {approach} with {count} parameters", code, errlog)


def rounds_for(runs: int, shell_runs: int) -> set[int]:
    """Spread ``shell_runs`` of ``runs`` rounds evenly, so the slow approach stays interleaved."""
    return {round(i * runs / shell_runs) for i in range(min(shell_runs, runs))}


def measure(
    args: argparse.Namespace, setup: Setup, env: dict[str, str], errlog: str
) -> dict[str, Any]:
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
                argv, cenv = command(setup, approach, count, env, CHILD)
                wall, rss, cpu, code = run_once(argv, cenv, errlog)
                if code != 0:
                    fail(f"{approach} with {count} parameters", code, errlog)
                samples[approach][str(count)].append([wall, rss, cpu])
        print(f"round {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
    return samples


def idle_rss(setup: Setup, approach: str, count: int, env: dict[str, str]) -> dict[str, int]:
    """VmRSS/VmHWM (KiB) of a process that stays up after loading: the agent in supervise
    mode, the plain boto3 script holding, or a bare interpreter."""
    ready = ["/bin/sh", "-c", "echo ready; exec sleep 600"]
    if approach == "floor":
        argv = [
            str(setup.python),
            "-c",
            "import signal; print('ready', flush=True); signal.pause()",
        ]
        cenv = {**env, "PATH": setup.path}
    else:
        argv, cenv = command(setup, approach, count, env, ready)
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


# --- how busy the machine was -------------------------------------------------------------


def cpu_snapshot() -> tuple[float, float, float]:
    """(monotonic seconds, busy CPU seconds of the whole machine, CPU seconds of this process
    and the children it has reaped)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # less idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    mine = sum(
        u.ru_utime + u.ru_stime
        for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    return time.monotonic(), busy / hz, mine


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def others_share(start: tuple[float, float, float], end: tuple[float, float, float]) -> float:
    """The share of the machine's CPU time that other processes used during the run."""
    wall = end[0] - start[0]
    others = (end[1] - start[1]) - (end[2] - start[2])
    return max(0.0, others / (wall * (os.cpu_count() or 1))) if wall > 0 else 0.0


# --- main ---------------------------------------------------------------------------------


def versions(setup: Setup) -> dict[str, str]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        **setup.describe(),
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--counts", default="0,1,10,50,200", help="parameter counts; 0 = no prefix")
    p.add_argument("--runs", type=int, default=21, help="timed runs per approach and count")
    p.add_argument(
        "--shell-runs",
        default=",".join(f"{k}:{v}" for k, v in DEFAULT_SHELL_RUNS.items()),
        help="COUNT:RUNS pairs for the old shell entrypoint (capped: it is slow)",
    )
    p.add_argument("--approaches", default=",".join(APPROACHES))
    p.add_argument("--moto-url", default=os.environ.get("MOTO_URL"))
    p.add_argument(
        "--out",
        type=Path,
        default=BENCH,
        help="directory for results.md/json, chart.png; the default also rewrites the tables"
        " in docs/performance.md",
    )
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--no-idle", action="store_true", help="skip the supervise-mode memory probe")
    p.add_argument(
        "--agent",
        type=Path,
        default=ENTRYPOINT,
        help="the agent's docker-entrypoint.py (e.g. of a `git archive` snapshot)",
    )
    p.add_argument(
        "--base-python",
        default=default_base_python(),
        help="interpreter the virtualenvs are built on (default: %(default)s)",
    )
    p.add_argument(
        "--venvs", type=Path, default=ROOT / ".venv-bench", help="where the venvs are built"
    )
    p.add_argument(
        "--venv",
        type=Path,
        help="measure this existing virtualenv instead (e.g. an image's /opt/secrets-agent)",
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
    setup = Setup(args)
    found = versions(setup)  # before the runs: the commit that was measured
    for key in ("interpreter", "site_packages", "entrypoint"):
        print(f"{key}: {found[key]}", file=sys.stderr)
    found["load_before"] = load()
    print(f"load average before: {found['load_before']}", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = cpu_snapshot()
    with tempfile.TemporaryDirectory() as tmp, moto_server(args.moto_url) as url:
        errlog = str(Path(tmp) / "stderr")
        _run([str(setup.python), "-c", SEEDER, url, *map(str, args.counts)], "seeding moto")
        env = base_env(url)
        verify(setup, args.approaches, args.counts, env, errlog)
        samples = measure(args, setup, env, errlog)
        idle: dict[str, dict[str, int]] = {}
        if not args.no_idle:
            for approach in ("floor", "agent", "plain_boto3"):
                if approach in args.approaches:
                    count = 10 if 10 in args.counts else max(args.counts)
                    idle[approach] = idle_rss(setup, approach, count, env)
    share = others_share(start, cpu_snapshot())
    found["load_after"] = load()
    found["others_cpu_share"] = f"{share:.2f}"
    found["busy"] = "yes" if share > BUSY_SHARE else "no"
    print(
        f"load average after: {found['load_after']}; other processes used {share:.0%} of the"
        f" machine's CPU during the run"
        + (" -- a BUSY machine: the figures are noisy" if share > BUSY_SHARE else ""),
        file=sys.stderr,
    )
    result = {
        "versions": found,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "counts": args.counts,
        "approaches": args.approaches,
        "samples": samples,
        "idle": idle,
    }
    tools = setup.tools if not args.no_chart else None
    write_outputs(result, args.out, chart_python=tools, docs=ROOT if args.out == BENCH else None)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
