"""SECRETS_AGENT_LISTEN with a quick app (tests/support/bin/notify_app.py) that speaks socket
activation
and readiness as puma does: the protocol the command gets, the mistakes that are refused at
start, signals while two commands run, and the order of the secret files on a handoff."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from secrets_agent.core.addresses import parse_addresses
from tests.conftest import base_env, error_line, run_agent
from tests.load_client import Load, failures
from tests.support.handoff_support import ListeningRails, gone, wait_gone
from tests.support.moto_server import MotoServer, free_port
from tests.support.supervised import ROOT, wait_until

NOTIFY_APP = ROOT / "tests" / "support" / "bin" / "notify_app.py"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def reports(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- the grammar ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp://0.0.0.0:3000", [("tcp", "0.0.0.0", 3000, "")]),  # noqa: S104 - parsed only
        ("tcp://[::]:3000", [("tcp", "::", 3000, "")]),
        (
            " tcp://127.0.0.1:3000 , unix:///run/app.sock",
            [("tcp", "127.0.0.1", 3000, ""), ("unix", "", 0, "/run/app.sock")],
        ),
    ],
)
def test_addresses_are_parsed(text: str, expected: list[tuple[str, str, int, str]]) -> None:
    assert [(a.family, a.host, a.port, a.path) for a in parse_addresses(text)] == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.0.0.0:3000", "use tcp://HOST:PORT"),
        ("http://0.0.0.0:3000", "use tcp://HOST:PORT"),
        ("tcp://localhost:3000", "the host is an IP address"),
        ("tcp://::1:3000", "the host is an IP address"),
        ("tcp://0.0.0.0:0", "the port is a number from 1 to 65535"),
        ("tcp://0.0.0.0:70000", "the port is a number from 1 to 65535"),
        ("tcp://0.0.0.0", "the host is an IP address"),
        ("tcp://0.0.0.0:3000,,tcp://0.0.0.0:3001", "an entry is empty"),
        ("tcp://0.0.0.0:3000,tcp://0.0.0.0:3000", "listed twice"),
        ("unix://relative.sock", "unix:///absolute/path"),
    ],
)
def test_bad_addresses_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_addresses(text)


# -- mistakes at start: 78, one line, the command never runs -------------------------------------
def test_a_bad_address_is_78_and_the_command_never_runs(tmp_path: Path) -> None:
    env = base_env(None) | {
        "SECRETS_AGENT_WATCH_INTERVAL": "60",
        "SECRETS_AGENT_LISTEN": "0.0.0.0:3000",
    }
    result = run_agent(tmp_path, env)
    assert result.returncode == 78, result.stderr
    assert not result.ran
    assert error_line(result.stderr).startswith(
        "secrets-agent: invalid configuration: SECRETS_AGENT_LISTEN is invalid: "
    )


@pytest.mark.parametrize("mode", ["exec", "redeploy"])
def test_listen_outside_restart_or_exit_supervise_mode_is_78(tmp_path: Path, mode: str) -> None:
    env = base_env(None) | {"SECRETS_AGENT_LISTEN": f"tcp://127.0.0.1:{free_port()}"}
    if mode == "redeploy":
        env |= {"SECRETS_AGENT_WATCH_INTERVAL": "60", "SECRETS_AGENT_ON_CHANGE": "redeploy"}
    result = run_agent(tmp_path, env)
    assert result.returncode == 78, result.stderr
    assert not result.ran
    line = error_line(result.stderr)
    assert "SECRETS_AGENT_LISTEN" in line and "supervise mode" in line, line


def test_a_port_already_in_use_is_78_and_the_command_never_runs(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(None) | {
            "SECRETS_AGENT_WATCH_INTERVAL": "60",
            "SECRETS_AGENT_LISTEN": f"tcp://127.0.0.1:{port}",
        }
        result = run_agent(tmp_path, env)
    assert result.returncode == 78, result.stderr
    assert not result.ran
    last = error_line(result.stderr)
    assert f"cannot listen on tcp://127.0.0.1:{port}: Address already in use" in last


# -- the protocol, signals and files with the quick app -------------------------------------------
def start(
    tmp_path: Path, moto: MotoServer, out: Path, extra: dict[str, str], *args: str
) -> ListeningRails:
    return ListeningRails(
        tmp_path,
        moto.url,
        {"PARAMETER_STORE_PREFIX": "/listen", "SECRETS_AGENT_STOP_TIMEOUT": "5", **extra},
        command=[sys.executable, str(NOTIFY_APP), "--out", str(out), *args],
        cwd=tmp_path,
    )


def test_the_command_gets_the_sockets_by_socket_activation(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """fds 3.. are the bound sockets, LISTEN_PID is the command's own pid, LISTEN_FDNAMES names
    them, NOTIFY_SOCKET is set; nothing else is inherited; clean signal mask, own group."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/listen/app_secret", Value="one", Type="SecureString")
    out = tmp_path / "app.jsonl"
    app_port, second = free_port(), free_port()
    app = ListeningRails(
        tmp_path,
        moto.url,
        {
            "PARAMETER_STORE_PREFIX": "/listen",
            "SECRETS_AGENT_LISTEN": f"tcp://127.0.0.1:{app_port}, tcp://127.0.0.1:{second}",
        },
        command=[sys.executable, str(NOTIFY_APP), "--out", str(out)],
        cwd=tmp_path,
        port=app_port,
    )
    try:
        ready = app.wait_event("command ready")
        started = [r for r in reports(out) if r["event"] == "start" and r["pid"] == ready["pid"]]
        assert started == [
            {
                "pid": ready["pid"],
                "event": "start",
                "file_sha": None,
                "boot": "ok",
                "listen_fds": "2",
                "listen_pid": str(ready["pid"]),
                "listen_fdnames": f"tcp-127.0.0.1-{app_port}:tcp-127.0.0.1-{second}",
                "notify_socket": True,
                "pgid": ready["pid"],
                "sig_blocked": "0000000000000000",
                "fds": [3, 4],
            }
        ]
        load = Load(app_port, "/", clients=1, max_requests=5)
        wait_until(lambda: load.count() >= 5, timeout=30, what="5 answers")
        answers = load.stop()
        assert not failures(answers)
        assert {a.body["pid"] for a in answers} == {ready["pid"]}
    finally:
        app.stop()


def test_a_stop_signal_during_a_handoff_reaches_both_and_the_status_is_the_serving_ones(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """A SIGTERM while the new command boots (it never gets ready): both get it, both are
    reaped, and the agent exits with the serving command's status, as tini would."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/listen/app_boot", Value="ok", Type="SecureString")
    out = tmp_path / "app.jsonl"
    app = start(tmp_path, moto, out, {"SECRETS_AGENT_READY_TIMEOUT": "120"})
    try:
        serving = app.wait_event("command ready")["pid"]
        ssm.put_parameter(
            Name="/listen/app_boot", Value="hang", Type="SecureString", Overwrite=True
        )
        booting = app.wait_event("handoff started")["pid"]
        wait_until(
            lambda: any(r["pid"] == booting for r in reports(out)),
            timeout=30,
            what="the new command to start",
        )
        assert sorted(app.children()) == sorted([serving, booting])
        app.proc.send_signal(signal.SIGTERM)
        code = app.proc.wait(30)
        assert code == 3, app.tail()  # the serving command's --code; the booting one's is 4
        got = {r["pid"] for r in reports(out) if r["event"] == "SIGTERM"}
        assert got == {serving, booting}
        wait_gone(serving)
        wait_gone(booting)
    finally:
        app.stop()


def test_secret_files_are_written_before_the_new_command_and_restored_when_it_fails(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """The order on a handoff: the files hold the new value before the new command starts (it
    reads them at boot); the old one keeps what it read. A new command that fails gets the
    files written back with the serving command's value."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/listen/master_key", Value="key-1", Type="SecureString")
    ssm.put_parameter(Name="/listen/app_boot", Value="ok", Type="SecureString")
    out = tmp_path / "app.jsonl"
    key = tmp_path / "master.key"
    app = start(
        tmp_path,
        moto,
        out,
        {"SECRETS_AGENT_FILES": "MASTER_KEY=master.key"},
        "--file",
        str(key),
    )
    try:
        first = app.wait_event("command ready")["pid"]
        ssm.put_parameter(
            Name="/listen/master_key", Value="key-2", Type="SecureString", Overwrite=True
        )
        second = app.wait_event("command handed over")["pid"]
        [seen] = [r for r in reports(out) if r["pid"] == second and r["event"] == "start"]
        assert seen["file_sha"] == sha("key-2")
        [old] = [r for r in reports(out) if r["pid"] == first and r["event"] == "start"]
        assert old["file_sha"] == sha("key-1")
        assert key.read_text() == "key-2"
        wait_gone(first)
        # Now a change that fails: the key rotates, but the new command crashes at boot.
        ssm.put_parameter(
            Name="/listen/master_key", Value="key-3", Type="SecureString", Overwrite=True
        )
        ssm.put_parameter(
            Name="/listen/app_boot", Value="crash", Type="SecureString", Overwrite=True
        )
        event = app.wait_event("secrets change not applied")
        assert "exited with status 1 before READY=1" in event["error"]
        crashed = [r for r in reports(out) if r["event"] == "start" and r["boot"] == "crash"]
        assert crashed and crashed[0]["file_sha"] == sha("key-3")
        assert key.read_text() == "key-2"  # the serving command's value again
        assert app.children() == [second]
        assert not gone(second)
    finally:
        app.stop()


def test_an_old_command_that_ignores_sigterm_is_killed_after_the_stop_timeout(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """After a handoff the old command has SECRETS_AGENT_STOP_TIMEOUT to exit; one that ignores
    SIGTERM is killed (its process group) and reaped, and the new one serves on."""
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/listen/app_term", Value="ignore", Type="SecureString")
    out = tmp_path / "app.jsonl"
    app = start(tmp_path, moto, out, {"SECRETS_AGENT_STOP_TIMEOUT": "2"})
    try:
        old = app.wait_event("command ready")["pid"]
        ssm.put_parameter(
            Name="/listen/app_term", Value="exit", Type="SecureString", Overwrite=True
        )
        new = app.wait_event("command handed over")["pid"]
        expired = app.wait_event("stop timeout expired")
        assert expired["pid"] == old and expired["signal"] == "SIGKILL"
        exited = app.wait_event("old command exited")
        assert exited["pid"] == old and exited["exit_code"] == 128 + signal.SIGKILL
        wait_gone(old)
        assert app.children() == [new]
        load = Load(app.port, "/", clients=1, max_requests=3)
        wait_until(lambda: load.count() >= 3, timeout=30, what="3 answers")
        answers = load.stop()
        assert not failures(answers) and {a.body["pid"] for a in answers} == {new}
    finally:
        app.stop()


def test_a_unix_address_is_bound_and_a_stale_socket_file_replaced(tmp_path: Path) -> None:
    from secrets_agent.process.listen import Listeners

    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays: an earlier run's socket
    listeners = Listeners(parse_addresses(f"unix://{path}"))
    try:
        assert listeners.environment() == {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "unix-app.sock"}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))  # listening: the connection waits in the backlog
    finally:
        listeners.close()


def test_a_unix_address_over_a_regular_file_is_refused(tmp_path: Path) -> None:
    from secrets_agent.core.errors import ConfigError
    from secrets_agent.process.listen import Listeners

    path = tmp_path / "data.txt"
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="cannot listen on unix://"):
        Listeners(parse_addresses(f"unix://{path}"))
    assert path.read_text() == "not a socket"


def test_check_says_which_rotation_listen_gives(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/listen/app_secret", Value="x", Type="SecureString")
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/listen",
        "SECRETS_AGENT_LISTEN": "tcp://0.0.0.0:3000",
        # check runs with the task's environment: LISTEN takes effect in supervise mode only.
        "SECRETS_AGENT_WATCH_INTERVAL": "60",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    result = run_agent(tmp_path, env, ["check"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("APP_SECRET")
    [line] = [json.loads(x) for x in result.stderr.splitlines() if '"listen: ' in x]
    assert line["addresses"] == ["tcp://0.0.0.0:3000"]
    assert "READY=1" in line["event"] and "held sockets" in line["event"]
