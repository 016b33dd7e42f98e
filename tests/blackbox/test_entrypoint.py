"""Black-box tests: docker/docker-entrypoint.py as a subprocess against a real moto server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ENTRYPOINT,
    ROOT,
    AgentRun,
    base_env,
    error_line,
    restricted_credentials,
    run_agent,
)
from tests.support.moto_server import MotoServer
from tests.support.seed import put, put_all

HOSTILE = {
    "newline": "line one\nline two\n",
    "equals": "a=b=c==",
    "quotes": 'it\'s "quoted" `tick`',
    "dollar": "$HOME ${PATH} $(id) $$",
    "backslash": "C:\\path\\n\\t\\\\",
    "unicode": "pässwörd ✓ 秘密",
    "spaces": "  leading and trailing  ",
    "empty-ish": " ",
    "long": "x" * 4096,
}


def added(run: Any, env: dict[str, str]) -> dict[str, str]:
    """What the child got beyond what the agent was started with."""
    assert run.child_env is not None, run.stderr
    return {k: v for k, v in run.child_env.items() if k not in env or env[k] != v}


# -- the no-AWS fast path -------------------------------------------------------------------


def test_no_prefix_execs_without_aws_imports(tmp_path: Path) -> None:
    env = base_env(None)
    env.pop("AWS_ACCESS_KEY_ID")
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"  # would fail if anything were called
    probe = (
        "import sys, json; heavy = [m for m in ('botocore', 'boto3', 'pydantic', "
        "'pydantic_settings', 'aws_encryption_sdk') if m in sys.modules]; print(json.dumps(heavy))"
    )
    # The entrypoint execs the command; the command is a fresh interpreter, so check imports
    # of the agent process itself with -X importtime on its stderr.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(ENTRYPOINT), sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("botocore", "boto3", "pydantic", "pydantic_settings", "aws_encryption_sdk"):
        assert heavy not in imported, f"{heavy} imported on the no-prefix path"
    assert "secrets_agent.process.fastpath" in imported  # the probe really measured the agent
    assert json.loads(proc.stdout) == []


def test_no_prefix_imports_nothing_the_interpreter_had_not(tmp_path: Path) -> None:
    """Beyond what `python3 -c pass` imports at start-up, the no-prefix path imports only its
    own two modules: no typing, enum (through signal), re, argparse, secrets_agent.cli ..."""
    env = base_env(None)

    def imports(*argv: str) -> set[str]:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}

    floor = imports("-c", "pass")
    agent = imports(str(ENTRYPOINT), "/bin/true")
    # The package, its (empty) process wing and the fast path: nothing else.
    assert agent - floor == {
        "secrets_agent",
        "secrets_agent.process",
        "secrets_agent.process.fastpath",
    }


def test_no_prefix_passes_environment_unchanged(tmp_path: Path) -> None:
    env = base_env(None)
    env["PARAMETER_STORE_PREFIX"] = ""
    env["SOMETHING"] = "kept as is"
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env == env
    assert run.stderr == ""


def test_exit_codes_of_exec(tmp_path: Path) -> None:
    env = base_env(None)
    assert run_agent(tmp_path, env, command=["definitely-not-a-command"]).returncode == 127
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    run = run_agent(tmp_path, env, command=[str(script)])
    assert run.returncode == 126
    assert "not-executable.sh: permission denied" in error_line(run.stderr)
    run = run_agent(tmp_path, env, command=[])
    assert run.returncode == 64
    assert run.stderr.count("\n") == 1
    code = run_agent(tmp_path, env, command=[sys.executable, "-c", "raise SystemExit(7)"])
    assert code.returncode == 7


def test_no_prefix_exec_resets_the_signal_mask_and_dispositions() -> None:
    # Python ignores SIGPIPE and SIGXFSZ at start-up, and a blocked signal survives execve.
    blocked = 1 << (signal.SIGUSR1 - 1)
    ignored = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "cat", "/proc/self/status"],
        env=base_env(None),
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1}),
    )
    assert proc.returncode == 0, proc.stderr
    status = dict(line.split(":\t", 1) for line in proc.stdout.splitlines() if ":\t" in line)
    assert int(status["SigBlk"], 16) & blocked == 0
    assert int(status["SigIgn"], 16) & ignored == 0


def test_no_prefix_searches_path_as_execvp_does(tmp_path: Path) -> None:
    # A non-executable match is skipped for a later executable one; alone, it is a 126.
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, mode in ((first, 0o644), (second, 0o755)):
        folder.mkdir()
        tool = folder / "the-tool"
        tool.write_text(f"#!/bin/sh\necho {folder.name}\n")
        tool.chmod(mode)
    env = base_env(None)
    env["PATH"] = f"{tmp_path / 'missing'}:{first}:{second}:/usr/bin:/bin"
    run = run_agent(tmp_path, env, command=["the-tool"])
    assert (run.returncode, run.stdout, run.stderr) == (0, "second\n", "")
    env["PATH"] = f"{tmp_path / 'missing'}:{first}"
    run = run_agent(tmp_path, env, command=["the-tool"])
    assert run.returncode == 126
    assert run.stderr.count("\n") == 1 and "the-tool: permission denied" in error_line(run.stderr)


def test_exec_replaces_the_agent_process(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client("ssm"), "/app/x", "1")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"}
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), sys.executable, "-c", "import os; print(os.getpid())"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert int(out) == proc.pid  # nothing of the agent's own reached stdout


# -- path mode ------------------------------------------------------------------------------


def test_path_mode_loads_everything_recursively_byte_for_byte(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    expected: dict[str, str] = {}
    for i in range(27):  # several pages of 10
        put(ssm, f"/kptboard/prod/bulk/item_{i:02d}", f"value-{i}")
        expected[f"BULK_ITEM_{i:02d}"] = f"value-{i}"
    for key, value in HOSTILE.items():
        put(ssm, f"/kptboard/prod/hostile/{key}", value)
        expected["HOSTILE_" + key.replace("-", "_").upper()] = value
    put_all(
        ssm,
        {
            "/kptboard/prod/secret_key_base": "skb",
            "/kptboard/prod/database/url": "postgres://u:p@h/db?x=1",
        },
    )
    put(ssm, "/kptboard/prod/plain", "not secure", "String")
    expected |= {"SECRET_KEY_BASE": "skb", "DATABASE_URL": "postgres://u:p@h/db?x=1"}
    expected["PLAIN"] = "not secure"
    put_all(ssm, {"/kptboard/production/leak": "must not load", "/kptboard/prodx": "must not load"})
    for prefix in ("/kptboard/prod", "/kptboard/prod/"):
        env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": prefix}
        run = run_agent(tmp_path, env)
        assert run.returncode == 0, run.stderr
        assert added(run, env) == expected
        # The agent's own settings stay in the command's environment.
        assert run.child_env is not None
        assert run.child_env["PARAMETER_STORE_PREFIX"] == prefix


def test_nothing_under_prefix_is_66(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    put(boto_client("ssm"), "/kptboard/production/x", "v")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/kptboard/prod"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 66
    assert not run.ran
    assert "/kptboard/prod" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# -- name-prefix mode (the old blog's names) -------------------------------------------------


def test_name_prefix_mode_boundaries(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    ssm = boto_client("ssm")
    put_all(
        ssm,
        {
            "kptboard-rails.secret.key.base": "skb-value",
            "kptboard-rails.database.url": "db-value",
            "kptboard-railsx.foo": "no",
            "kptboard-rails-staging.foo": "no",
            "other.secret": "no",
        },
    )
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "kptboard-rails"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert added(run, env) == {"SECRET_KEY_BASE": "skb-value", "DATABASE_URL": "db-value"}


def test_name_prefix_with_trailing_separator(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    put(ssm, "kptboard-rails.secret.key.base", "skb-value")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "kptboard-rails."}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert added(run, env) == {"SECRET_KEY_BASE": "skb-value"}


# -- data errors: 65, command not run, no value printed ---------------------------------------


@pytest.mark.parametrize(
    ("names", "needle"),
    [
        (["/app/db_url", "/app/db.url", "/app/db/url"], "DB_URL"),
        (["/app/path"], "PATH"),
        (["/app/ld/preload"], "LD_PRELOAD"),
        (["/app/aws/secret_access_key"], "AWS_SECRET_ACCESS_KEY"),
        (["/app/1password"], "digit"),
        (["/app/--"], "empty"),
    ],
)
def test_bad_names_are_65(
    tmp_path: Path, moto: MotoServer, boto_client: Any, names: list[str], needle: str
) -> None:
    ssm = boto_client("ssm")
    put(ssm, "/app/fine", "fine-canary-value")
    for name in names:
        put(ssm, name, "bad-canary-value")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 65, run.stderr
    assert not run.ran
    assert needle in run.stderr
    assert names[0] in run.stderr
    assert "canary" not in run.stderr + run.stdout


# -- precedence ------------------------------------------------------------------------------


def test_existing_variable_kept_unless_override(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client("ssm"), "/app/database_url", "from-ssm")
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app", "DATABASE_URL": "from-env"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    assert run.child_env is not None and run.child_env["DATABASE_URL"] == "from-env"
    assert "DATABASE_URL" in run.stderr and "kept" in run.stderr
    assert "from-env" not in run.stderr and "from-ssm" not in run.stderr
    env["SECRETS_AGENT_OVERRIDE"] = "true"
    run = run_agent(tmp_path, env)
    assert run.child_env is not None and run.child_env["DATABASE_URL"] == "from-ssm"


# -- failures: 69, 77, 78 -------------------------------------------------------------------


def unavailable_within(tmp_path: Path, endpoint: str, *, timeout: int) -> AgentRun:
    """A run against ``endpoint`` with SECRETS_AGENT_TIMEOUT=``timeout``: 69 (unavailable),
    the command never started, within the timeout and 5 s to start and stop Python."""
    env = base_env(endpoint) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRETS_AGENT_TIMEOUT": str(timeout),
    }
    start = time.monotonic()
    run = run_agent(tmp_path, env)
    elapsed = time.monotonic() - start
    assert run.returncode == 69, run.stderr
    assert not run.ran
    assert elapsed < timeout + 5
    return run


def test_unreachable_endpoint_is_69_within_timeout(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    run = unavailable_within(tmp_path, f"http://127.0.0.1:{port}", timeout=3)
    assert "SECRETS_AGENT_TIMEOUT" in run.stderr or "reach" in run.stderr


@dataclass
class Hanging:
    url: str
    held: list[socket.socket]  # the connections accepted so far


@pytest.fixture
def hanging_endpoint() -> Iterator[Hanging]:
    """A socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield Hanging(f"http://127.0.0.1:{server.getsockname()[1]}", held)
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_hanging_endpoint_is_69_within_timeout(tmp_path: Path, hanging_endpoint: Hanging) -> None:
    run = unavailable_within(tmp_path, hanging_endpoint.url, timeout=2)
    assert len(run.stderr.strip().splitlines()) == 1


def test_access_denied_is_77(tmp_path: Path, moto: MotoServer, boto_client: Any) -> None:
    put(boto_client("ssm"), "/app/secret", "denied-value")
    creds = restricted_credentials(boto_client, moto, "no-ssm", ["s3:ListBucket"])
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"} | creds
    run = run_agent(tmp_path, env)
    assert run.returncode == 77, run.stderr
    assert not run.ran
    assert "ssm:GetParametersByPath" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SECRETS_AGENT_TIMEOUT", "soon"),
        ("SECRETS_AGENT_TIMEOUT", "-1"),
        ("SECRETS_AGENT_WATCH_INTERVAL", "-5"),
        ("SECRETS_AGENT_ON_CHANGE", "reboot"),
        ("SECRETS_AGENT_OVERRIDE", "maybe"),
        ("SECRETS_AGENT_LOG_LEVEL", "loud"),
        ("SECRETS_AGENT_LOG_FORMAT", "xml"),
        ("SECRETS_AGENT_KMS_KEY_ARNS", "alias/aws/ssm"),
    ],
)
def test_bad_setting_is_78_naming_the_variable(tmp_path: Path, var: str, value: str) -> None:
    env = base_env(None) | {var: value}
    run = run_agent(tmp_path, env)
    assert run.returncode == 78
    assert not run.ran
    assert var in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_no_region_is_78(tmp_path: Path, moto: MotoServer) -> None:
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"}
    env.pop("AWS_DEFAULT_REGION")
    run = run_agent(tmp_path, env)
    assert run.returncode == 78, run.stderr
    assert "AWS_REGION" in run.stderr


# -- logs, env, check ------------------------------------------------------------------------


def test_logs_are_json_lines_with_names_not_values(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    put_all(ssm, {"/app/secret_key_base": "log-canary-1", "/app/api/token": "log-canary-2"})
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
    }
    run = run_agent(tmp_path, env)
    assert run.returncode == 0
    events = [json.loads(line) for line in run.stderr.splitlines()]
    summary = [e for e in events if e["event"] == "secrets resolved"]
    assert summary and summary[0]["names"] == ["API_TOKEN", "SECRET_KEY_BASE"]
    assert summary[0]["count"] == 2
    assert "seconds" in summary[0]
    assert any(e["event"] == "variable set" and e.get("version") == "1" for e in events)
    assert "log-canary" not in run.stderr
    env["SECRETS_AGENT_LOG_FORMAT"] = "text"
    run = run_agent(tmp_path, env)
    assert "secrets resolved" in run.stderr and "log-canary" not in run.stderr


def test_env_shell_output_round_trips_through_bash_eval(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    for key, value in HOSTILE.items():
        put(ssm, f"/app/{key}", value)
    env = base_env(moto.url) | {"PARAMETER_STORE_PREFIX": "/app"}
    run = run_agent(tmp_path, env, ["env", "--format", "shell", "--reveal"])
    assert run.returncode == 0, run.stderr
    script = tmp_path / "exports.sh"
    script.write_text(run.stdout)
    names = [k.replace("-", "_").upper() for k in HOSTILE]
    dumper = tmp_path / "dump.py"
    dumper.write_text(
        f"import json, os, sys\nprint(json.dumps({{k: os.environ[k] for k in {names!r}}}))\n"
    )
    dump = f'eval "$(cat {script})"; exec {sys.executable} {dumper}'
    proc = subprocess.run(["bash", "-c", dump], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {k.replace("-", "_").upper(): v for k, v in HOSTILE.items()}
    masked = run_agent(tmp_path, env, ["env", "--format", "shell"])
    assert "'***'" in masked.stdout
    for value in HOSTILE.values():
        if len(value.strip()) > 3:
            assert value not in masked.stdout


def test_check_lists_name_source_version_never_values(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    put(ssm, "/app/secret_key_base", "check-canary")
    put_all(ssm, {"/app/secret_key_base": "check-canary-2", "/app/database_url": "db-canary"})
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "DATABASE_URL": "env-canary",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
    }
    run = run_agent(tmp_path, env, ["check"])
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    assert ["DATABASE_URL", "environment", "DATABASE_URL", "-"] in rows
    assert ["SECRET_KEY_BASE", "ssm", "/app/secret_key_base", "2"] in rows
    assert "canary" not in run.stdout + run.stderr
    env["PARAMETER_STORE_PREFIX"] = "/nothing"
    assert run_agent(tmp_path, env, ["check"]).returncode == 66


def test_demo_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        # The first run installs the demo's virtualenv from the lock: minutes on a busy machine.
        ["bash", str(ROOT / "demo" / "run.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SECRET_KEY_BASE" in proc.stdout and "DATABASE_URL" in proc.stdout
    assert "demo-secret-key-base" not in proc.stdout + proc.stderr


def test_sigterm_during_resolution_stops_at_once(tmp_path: Path, hanging_endpoint: Hanging) -> None:
    """A stop signal while the first fetch hangs ends the agent; the command never starts."""
    out = tmp_path / "ran"
    env = base_env(hanging_endpoint.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRETS_AGENT_TIMEOUT": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "touch", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Signal once the agent's first request is stuck at the endpoint, however slow its start.
    deadline = time.monotonic() + 30
    while not hanging_endpoint.held and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hanging_endpoint.held, "the agent never reached the endpoint"
    time.sleep(0.2)  # the request is sent and botocore waits for the answer
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - start < 5
    assert proc.returncode == 128 + signal.SIGTERM
    assert not out.exists()
    assert "signal" in err
