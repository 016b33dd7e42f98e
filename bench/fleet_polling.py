#!/usr/bin/env python3
"""How many AWS calls a second a fleet's change checks make, restart vs redeploy mode.

    python3 bench/fleet_polling.py [--interval 300] [--pages 4] [--hours 6] [--seed 1]

A simulation of N tasks with the agent's own pacing (``secrets_agent.supervise.redeploy``: each
task waits
``interval x min(running tasks, MAX_STRETCH)`` with the supervisor's +-15 % jitter, its first
check at a random point of that span; restart mode: every ``interval`` +-15 %), counting
checks over a long window. Each check costs ``--pages`` GetParametersByPath calls (30
parameters: 3 pages of 10 on AWS, 4 on moto, which sends a last empty page) and, in redeploy
mode, one ecs:DescribeServices. Prints a Markdown table, with the formula next to it.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secrets_agent.supervise.redeploy import stretch  # noqa: E402
from secrets_agent.supervise.stagger import JITTER  # noqa: E402

SSM_DEFAULT_TPS = 40.0  # GetParameter, GetParameters and GetParametersByPath together


def simulate(tasks: int, *, interval: float, redeploy: bool, seconds: float, seed: int) -> int:
    """Checks the whole fleet makes in ``seconds``."""
    rng = random.Random(seed)
    span = interval * (stretch(tasks) if redeploy else 1)
    checks = 0
    for _ in range(tasks):
        # Restart mode: the first check one jittered interval after the start; redeploy mode:
        # at a random point of the span. Tasks start at random moments of a long-running fleet.
        t = -rng.uniform(0, span)  # the fleet was already running when the window opened
        t += span * (rng.uniform(0, 1) if redeploy else rng.uniform(1 - JITTER, 1 + JITTER))
        while t < seconds:
            if t >= 0:
                checks += 1
            t += span * rng.uniform(1 - JITTER, 1 + JITTER)
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=300.0)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seconds = args.hours * 3600
    print(
        f"interval {args.interval:g} s, {args.pages} GetParametersByPath pages a check, "
        f"{args.hours:g} h simulated\n"
    )
    print(
        "| tasks | restart: checks/s | restart: GetParametersByPath/s (% of 40) "
        "| redeploy: checks/s | redeploy: GetParametersByPath/s (% of 40) "
        "| redeploy: DescribeServices/s | formula, redeploy checks/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for tasks in (10, 100, 1000):
        row = [str(tasks)]
        for redeploy in (False, True):
            rate = simulate(
                tasks, interval=args.interval, redeploy=redeploy, seconds=seconds, seed=args.seed
            ) / seconds
            pages = rate * args.pages
            row += [f"{rate:.4f}", f"{pages:.3f} ({100 * pages / SSM_DEFAULT_TPS:.2f} %)"]
        row.append(row[-2])  # one DescribeServices a check
        formula = tasks / (args.interval * stretch(tasks))
        row.append(f"N / (interval x min(N, 100)) = {formula:.4f}")
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
