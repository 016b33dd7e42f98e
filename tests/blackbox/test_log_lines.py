"""Every stderr line stays well under Docker's 16 KiB line limit, whatever is loaded.

Docker's json-file and awslogs drivers split a line longer than 16 KiB, so CloudWatch gets two
fragments of one JSON object, neither of which parses. With 2,000 parameters the "secrets
resolved" event alone listed 2,000 names (about 26 KB). Black-box, against a moto server.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import base_env, run_agent
from tests.support.moto_server import MotoServer

PARAMETERS = 2000
DOCKER_LINE_LIMIT = 16 * 1024
MAX_LINE = 8192  # the agent's own cap (secrets_agent.core.printable.MAX_LINE), half of Docker's


def seed(boto_client: Any) -> None:
    ssm = boto_client("ssm")

    def put(i: int) -> None:
        ssm.put_parameter(
            Name=f"/big/prod/service_{i:04d}/setting_name", Value=f"value {i}", Type="String"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(PARAMETERS)))


def test_two_thousand_parameters_log_no_line_over_the_limit(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    seed(boto_client)
    base = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/big/prod",
        "SECRETS_AGENT_TIMEOUT": "120",
    }
    for level in ("debug", "info"):
        for fmt in ("json", "text"):
            env = base | {"SECRETS_AGENT_LOG_LEVEL": level, "SECRETS_AGENT_LOG_FORMAT": fmt}
            run = run_agent(tmp_path, env, timeout=300)
            assert run.returncode == 0, run.stderr[-2000:]
            assert run.child_env is not None
            assert run.child_env["SERVICE_1999_SETTING_NAME"] == "value 1999"
            lines = run.stderr.split("\n")
            assert lines[-1] == ""
            for line in lines[:-1]:
                size = len(line.encode("utf-8"))
                assert size < DOCKER_LINE_LIMIT, (level, fmt, size, line[:200])
                assert size <= MAX_LINE, (level, fmt, size, line[:200])
            resolved = [line for line in lines if "secrets resolved" in line]
            assert len(resolved) == 1
            if fmt == "json":
                events = [json.loads(line) for line in lines[:-1]]
                event = next(e for e in events if e["event"] == "secrets resolved")
                assert event["count"] == PARAMETERS
                # The names that fit, first to last in order, then how many were left out.
                names = event["names"]
                assert names == sorted(names) and names[0] == "SERVICE_0000_SETTING_NAME"
                assert len(names) + event["names_omitted"] == PARAMETERS
                if level == "debug":
                    set_events = [e for e in events if e["event"] == "variable set"]
                    assert len(set_events) == PARAMETERS
            else:
                assert "names_omitted=" in resolved[0]
