#!/usr/bin/env python3
"""The worst case of redeploy mode's "one deployment per rotation": every task of a service
finds the change at the same instant.

    python3 bench/redeploy_race.py [--tasks 20] [--rounds 30] [--stagger-ms 0]

Starts a moto server, a service, and per round ``--tasks`` threads that wait on one barrier,
then each run the agent's own decision (``secrets_agent.supervise.redeploy``: DescribeServices, then
UpdateService unless a deployment newer than the task's resolution exists) with their own
botocore client; ``--stagger-ms`` spreads their start uniformly over that many milliseconds.
Prints how many deployments each round asked for. In the agent, a service's checks are spread
over the interval (each task at a random phase of ``interval x running tasks``), so tasks
finding one change within the same few milliseconds is the rare case this measures.
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secrets_agent.aws.clients import Clients  # noqa: E402
from secrets_agent.aws.ecs_service import Service, describe  # noqa: E402
from secrets_agent.output.logs import Logger  # noqa: E402
from secrets_agent.supervise.redeploy import CLOCK_MARGIN, SETTLE, request_once  # noqa: E402
from tests.support.moto_server import free_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--stagger-ms", type=float, default=0.0)
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help="0: look once (no second look)"
    )
    args = parser.parse_args()
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        environ = {
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        import os

        os.environ.update(environ)
        log = Logger(level="error", fmt="json")
        setup = Clients(environ=environ, timeout=30, log=log).get("ecs")
        setup.create_cluster(clusterName="prod")
        setup.register_task_definition(
            family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}]
        )
        setup.create_service(
            cluster="prod", serviceName="web", taskDefinition="app", desiredCount=args.tasks
        )
        service = Service("prod", "web", "us-east-1", None, "setting")
        per_task = [Clients(environ=environ, timeout=30, log=log) for _ in range(args.tasks)]
        for clients in per_task:
            describe(clients, service)  # connections open, as in a running agent
        outcome: collections.Counter[int] = collections.Counter()
        rng = random.Random(1)
        for _ in range(args.rounds):
            time.sleep(0.05)
            # Every task resolved its values before this rotation: a deployment created from
            # now on replaces them.
            resolved_at = time.time() - CLOCK_MARGIN
            time.sleep(0.01)
            asked: list[int] = []
            delays = [rng.uniform(0, args.stagger_ms / 1000) for _ in range(args.tasks)]
            pauses = [rng.uniform(0, args.settle) for _ in range(args.tasks)]
            barrier = threading.Barrier(args.tasks)

            def task(
                i: int,
                barrier: threading.Barrier = barrier,
                resolved_at: float = resolved_at,
                asked: list[int] = asked,
                delays: list[float] = delays,
                pauses: list[float] = pauses,
            ) -> None:
                barrier.wait()
                time.sleep(delays[i])
                if request_once(per_task[i], service, resolved_at, pause=pauses[i])[0]:
                    asked.append(i)

            threads = [threading.Thread(target=task, args=(i,)) for i in range(args.tasks)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            outcome[len(asked)] += 1
        print(
            f"{args.tasks} tasks finding one change within {args.stagger_ms:g} ms, "
            f"second look within {args.settle:g} s, {args.rounds} rounds: "
            f"deployments per rotation -> rounds: {dict(sorted(outcome.items()))}"
        )
    finally:
        moto.terminate()
        moto.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
