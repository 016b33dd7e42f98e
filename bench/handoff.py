"""Requests across one rotation: restart mode, the handoff and the fallback (run by hand).

The test Rails app (tests/support/rails) under Debian's puma 5 with ``ruby-sd-notify``, supervised
by
the real entrypoint (1 s checks through the tests' wrapper) against a local moto server. A load
generator on 127.0.0.1 (``--clients`` clients, a new connection per request) runs for
``--before`` seconds, a SecureString is rotated, and the load goes on until the new process has
served for ``--after`` seconds. Per mode and round: requests, failed requests (connection
refused or reset, non-200), p50/p99/max latency of the answered ones, and the peak resident
memory of the app processes (both, during an overlap) against one.

    python3 bench/handoff.py [--rounds 3] [--clients 4]

Prints a Markdown table (medians of the rounds; failures summed) and writes JSON next to it
with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.load_client import Load, failures, summary  # noqa: E402
from tests.support.handoff_support import KEY, ListeningRails  # noqa: E402
from tests.support.moto_server import start_moto  # noqa: E402
from tests.support.rails_app import descendants  # noqa: E402

MODES = {
    "restart (today)": {"listen": False, "wrap": []},
    "handoff (SECRETS_AGENT_LISTEN, READY=1)": {"listen": True, "wrap": []},
    "fallback (SECRETS_AGENT_LISTEN, no notify)": {
        "listen": True,
        "wrap": ["env", "-u", "NOTIFY_SOCKET"],
    },
}


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Sampler:
    """The app processes' summed RSS every 50 ms (the agent's check processes left out)."""

    def __init__(self, agent_pid: int) -> None:
        self.agent_pid = agent_pid
        self.peak = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def apps(self) -> list[int]:
        out = []
        for pid in descendants(self.agent_pid):
            try:
                if b"check_process" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(pid)
            except OSError:
                continue
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mib(self.apps()))
            time.sleep(0.05)


def one_round(moto_url: str, mode: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    ssm = boto3.client(
        "ssm",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
    )
    prefix = f"/bench{n}"
    ssm.put_parameter(Name=f"{prefix}/secret_key_base", Value=KEY, Type="SecureString")
    ssm.put_parameter(Name=f"{prefix}/app_secret", Value="old", Type="SecureString")
    spec = MODES[mode]
    with tempfile.TemporaryDirectory() as tmp:
        app = ListeningRails(
            Path(tmp),
            moto_url,
            {
                "PARAMETER_STORE_PREFIX": prefix,
                "SECRETS_AGENT_READY_TIMEOUT": "5" if spec["wrap"] else "120",
            },
            listen=bool(spec["listen"]),
            wrap=list(spec["wrap"]),
        )
        try:
            if spec["listen"]:
                first = app.wait_event("command ready" if not spec["wrap"] else "no READY=1")
            else:
                first = app.wait_event("command started")
                time.sleep(8)  # a boot, on a loaded machine
            sampler = Sampler(app.proc.pid)
            time.sleep(1)
            single = sampler.peak
            load = Load(app.port, "/served/APP_SECRET", clients=args.clients, max_seconds=300)
            time.sleep(args.before)
            rotated = time.monotonic()
            ssm.put_parameter(
                Name=f"{prefix}/app_secret", Value="new", Type="SecureString", Overwrite=True
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                answers = list(load.answers)
                if any(
                    isinstance(a.body, dict) and a.body.get("pid") not in (None, first["pid"])
                    for a in answers
                ):
                    break
                time.sleep(0.05)
            served_new = time.monotonic()
            time.sleep(args.after)
            answers = load.stop()
            sampler.stop.set()
        finally:
            app.stop()
    stats: dict[str, Any] = dict(summary(answers))
    failed = failures(answers)
    stats["errors"] = sorted({a.error or f"HTTP {a.status}" for a in failed})[:3]
    stats["failing_for_s"] = (
        round(max(a.started + a.seconds for a in failed) - min(a.started for a in failed), 2)
        if failed
        else 0.0
    )
    stats["new_serving_after_s"] = round(served_new - rotated, 2)
    stats["rss_one_mib"] = round(single, 1)
    stats["rss_peak_mib"] = round(sampler.peak, 1)
    return stats


def render(results: dict[str, list[dict[str, Any]]]) -> str:
    """The Markdown table: medians of the rounds, failures summed over them."""
    lines = [
        "| mode | answered 200 | failed (all rounds) | p50 | p99 | max | new process serving "
        "after the put | failing for | app RSS, one / peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, rounds in results.items():

        def med(key: str, rounds: list[dict[str, Any]] = rounds) -> float:
            return float(statistics.median(r[key] for r in rounds))

        answered = statistics.median(r["requests"] - r["failed"] for r in rounds)
        failed = sum(r["failed"] for r in rounds)
        total = sum(r["requests"] for r in rounds)
        lines.append(
            f"| {mode} | {answered:.0f} | {failed} of {total} | {med('p50_ms'):.0f} ms "
            f"| {med('p99_ms'):.0f} ms | {med('max_ms'):.0f} ms "
            f"| {med('new_serving_after_s'):.1f} s | {med('failing_for_s'):.1f} s "
            f"| {med('rss_one_mib'):.0f} / {med('rss_peak_mib'):.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--modes", default="", help="comma-separated words of the modes to run")
    parser.add_argument("--render", type=Path, help="only print the table of a --json file")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    moto = start_moto()
    chosen = [m for m in MODES if not args.modes or any(w in m for w in args.modes.split(","))]
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in chosen}
    counter = 0
    try:
        for _ in range(args.rounds):
            for mode in chosen:
                counter += 1
                stats = one_round(moto.url, mode, counter, args)
                print(mode, stats, file=sys.stderr, flush=True)
                results[mode].append(stats)
    finally:
        moto.stop()
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
