"""Output and log injection: what a parameter writer chooses (JSON keys, an aesdk: header's
encryption context) never reaches stdout or stderr raw.

A raw newline forges a ``check`` row or a second error line, ESC or CSI (U+009B) drives the
terminal, U+2028 / U+0085 split a line for readers that follow Unicode, and bidi controls
(U+202E, U+2066, U+200E) or U+FEFF reorder or hide text. Black-box: the real entrypoint and
``python -m secrets_agent`` against a moto server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, AgentRun, base_env, error_event, error_line, run_agent
from tests.support.moto_server import MotoServer

# Every character that must not reach an output raw, and where it shows up.
DANGEROUS = "\n\r\t\x1b\x07\x7f\x85\x9b\u2028\u2029\u202e\u2066\u200e\ufeff"
HOSTILE_KEYS = {
    "a\u2028b": "v1",
    "c\u0085d": "v2",
    "e\u009b2Jf": "v3",
    "g\u202eh": "v4",
    "i\u2066j\u200ek\ufeffl": "v5",
    "m\x1b[31mn": "v6",
    "o\u2029p\rq": "v7",
}


def raw_outside_escapes(text: str) -> set[str]:
    """The dangerous characters present in ``text``, ignoring the final newline of each line."""
    return {ch for ch in DANGEROUS if ch in text.replace("\n", "")} | (
        {"\n"} if any(not line for line in text.split("\n")[:-1]) else set()
    )


def test_a_json_key_with_a_newline_and_esc_cannot_forge_a_check_row(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    forged = "x\nFORGED_ROW  ssm  /forged/row  99\x1b[2J"
    boto_client("secretsmanager").create_secret(
        Name="app/prod/db", SecretString=json.dumps({"user": "u", forged: "v"})
    )
    env = base_env(moto.url) | {"SECRETS_MANAGER_PREFIX": "app/prod"}
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    rows = run.stdout.splitlines()
    assert len(rows) == 2, rows  # two variables, two rows
    assert run.stdout.count("\n") == 2
    assert not any(row.startswith("FORGED") for row in rows)
    assert "\x1b" not in run.stdout
    forged_row = next(row for row in rows if row.startswith("DB_X_FORGED_ROW_SSM_FORGED_ROW_99_2J"))
    # Still readable: the key is there, escaped.
    assert "app/prod/db:x\\nFORGED_ROW  ssm  /forged/row  99\\u001b[2J" in forged_row
    assert raw_outside_escapes(run.stderr) == set()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logs_escape_line_separators_controls_and_bidi_characters(
    tmp_path: Path, moto: MotoServer, boto_client: Any, fmt: str
) -> None:
    boto_client("secretsmanager").create_secret(
        Name="app/prod/weird", SecretString=json.dumps(HOSTILE_KEYS)
    )
    env = base_env(moto.url) | {
        "SECRETS_MANAGER_PREFIX": "app/prod",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": fmt,
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None
    assert run.child_env["WEIRD_A_B"] == "v1" and run.child_env["WEIRD_O_P_Q"] == "v7"
    assert raw_outside_escapes(run.stderr) == set(), run.stderr
    # No Unicode line break either: the lines a Unicode-aware reader sees are the real lines.
    assert run.stderr.splitlines() == run.stderr.split("\n")[:-1]
    lines = run.stderr.splitlines()
    set_events = [line for line in lines if "variable set" in line]
    assert len(set_events) == len(HOSTILE_KEYS)
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        # Escaped, not lost: the JSON decodes back to the key as the secret holds it.
        source_names = {e.get("source_name") for e in events if e["event"] == "variable set"}
        assert source_names == {f"app/prod/weird:{key}" for key in HOSTILE_KEYS}
    else:
        assert any('source_name="app/prod/weird:a\\u2028b"' in line for line in set_events)
        assert any("g\\u202eh" in line for line in set_events)


def craft_aesdk(moto: MotoServer, key: str, bound_name: str) -> str:
    """An aesdk: value whose header binds it to ``bound_name`` (what a hostile writer crafts)."""
    code = (
        "import sys, botocore.session\n"
        "from secrets_agent.aws.envelope import encrypt_value\n"
        "print(encrypt_value(b'x', key_id=sys.argv[1], name=sys.argv[2],"
        " botocore_session=botocore.session.get_session()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, key, bound_name],
        env=base_env(moto.url),
        capture_output=True,
        cwd=str(ROOT),
        check=True,
    )
    value = out.stdout.decode().strip()
    assert value.startswith("aesdk:")
    return value


def test_a_crafted_aesdk_header_cannot_split_the_error_line_or_inject_an_escape(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    key = str(boto_client("kms").create_key()["KeyMetadata"]["Arn"])
    bound = "X\nsecrets-agent: ok: all secrets loaded\x1b[2J\u2028\u202e"
    value = craft_aesdk(moto, key, bound)
    env = base_env(moto.url) | {
        "SECRETS_AGENT_KMS_KEY_ARNS": key,
        "SECRET_KEY_BASE": value,
    }
    for log_format in ("text", "json"):
        run: AgentRun = run_agent(tmp_path, env | {"SECRETS_AGENT_LOG_FORMAT": log_format})
        assert run.returncode == 65, run.stderr
        assert not run.ran
        assert run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.splitlines() == run.stderr.split("\n")[:-1]
        assert raw_outside_escapes(run.stderr) == set()
        line = error_line(run.stderr)  # in JSON mode, the event's fields
        if log_format == "json":
            assert bound in error_event(run.stderr)["message"]  # valid JSON, the name intact
        assert line.startswith("secrets-agent: bad secret data: ")
        assert "SECRET_KEY_BASE" in line
        assert "X\\nsecrets-agent: ok: all secrets loaded\\u001b[2J" in line
