"""SECRETS_AGENT_FILES against a real moto server: values written to files, not the environment.

The entrypoint runs in a working directory of the test's own (relative paths are relative to
it), and its command is a small script that reports what it could see when it started: its
environment, and each file named on its command line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENTRYPOINT, base_env, error_line
from tests.support.logs import events
from tests.support.moto_server import MotoServer
from tests.support.supervised import rotating_agent_argv, wait_until

# The command: appends {"env": ..., "files": {path: content or null}, "pid": ...} to argv[1]
# and exits 0; with "wait", it then waits for SIGTERM, and on it appends {"stopping": files}.
REPORTER = r"""
import json, os, signal, sys, time
out, wait, paths = sys.argv[1], sys.argv[2] == "wait", sys.argv[3:]
def files():
    found = {}
    for p in paths:
        try:
            found[p] = open(p, encoding="utf-8").read()
        except OSError as exc:
            found[p] = None
    return found
def emit(obj):
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj) + "\n")
emit({"env": dict(os.environ), "files": files(), "pid": os.getpid()})
def stop(*_):
    emit({"stopping": files()})
    sys.exit(0)
if wait:
    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.1)
"""


def reporter(out: Path, *paths: str, wait: bool = False) -> list[str]:
    return [sys.executable, "-c", REPORTER, str(out), "wait" if wait else "once", *paths]


def lines(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def reports(out: Path) -> list[dict[str, Any]]:
    """One per start of the command."""
    return [line for line in lines(out) if "env" in line]


def stop(proc: subprocess.Popen[bytes], out: Path) -> None:
    """Kill the agent if it still runs, and every command it started (each reported in ``out``)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for report in reports(out):
        try:
            os.kill(report["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(
    cwd: Path,
    env: Mapping[str, str],
    command: Sequence[str],
    *,
    wrapper: Sequence[str] = (),
    args: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The entrypoint (or ``python -m secrets_agent ARGS``) with ``cwd`` as its working
    directory."""
    agent = [sys.executable, str(ENTRYPOINT), *command]
    if args is not None:
        agent = [sys.executable, "-m", "secrets_agent", *args]
    return subprocess.run(
        [*wrapper, *agent],
        env=dict(env),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".secrets-agent-")]


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh folder under /dev/shm, one of the fixed roots; removed afterwards."""
    path = Path("/dev/shm") / f"secrets-agent-test-{os.urandom(6).hex()}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    (folder / "config" / "credentials").mkdir(parents=True)
    return folder


MASTER_KEY = "0123456789abcdef0123456789abcdef"
TLS_KEY = "-----BEGIN PRIVATE KEY-----\nMIIB...test\n-----END PRIVATE KEY-----\n"
KEY_PATH = "config/credentials/production.key"


def test_values_go_to_files_not_the_environment(
    moto: MotoServer, boto_client: Any, app: Path, shm_dir: Path
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/rails_master_key", Value=MASTER_KEY, Type="SecureString")
    ssm.put_parameter(Name="/app/prod/database_url", Value="postgres://db/x", Type="SecureString")
    ssm.put_parameter(Name="/shared/tls_key", Value=TLS_KEY, Type="SecureString")
    tls_path = f"{shm_dir}/tls/server.key"
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "TLS_KEY": "ssm:/shared/tls_key",
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}, TLS_KEY={tls_path}",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    out = app / "report.json"
    result = run(app, env, reporter(out, KEY_PATH, tls_path))
    assert result.returncode == 0, result.stderr
    [seen] = reports(out)
    # The command found both files when it started, and neither variable in its environment.
    assert seen["files"] == {KEY_PATH: MASTER_KEY, tls_path: TLS_KEY}
    assert "RAILS_MASTER_KEY" not in seen["env"]
    assert "TLS_KEY" not in seen["env"]
    assert seen["env"]["DATABASE_URL"] == "postgres://db/x"
    for path, value in ((app / KEY_PATH, MASTER_KEY), (Path(tls_path), TLS_KEY)):
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o400
        assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())
        assert path.read_text(encoding="utf-8") == value
        assert temp_files(path.parent) == []
    # A missing folder below a root is created, for the owner alone.
    assert stat.S_IMODE((shm_dir / "tls").stat().st_mode) == 0o700
    for value in (MASTER_KEY, "MIIB", "postgres://db/x"):
        assert value not in result.stderr
    written = [json.loads(x) for x in result.stderr.splitlines() if '"secret files' in x]
    assert written[0]["names"] == ["RAILS_MASTER_KEY", "TLS_KEY"]


def test_an_existing_file_is_replaced_by_rename(
    moto: MotoServer, boto_client: Any, app: Path
) -> None:
    boto_client("ssm").put_parameter(
        Name="/app/prod/rails_master_key", Value=MASTER_KEY, Type="SecureString"
    )
    key = app / KEY_PATH
    key.write_text("old key, much longer than the new one " * 10)
    key.chmod(0o644)
    before = key.stat().st_ino
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
    }
    result = run(app, env, reporter(app / "report.json", KEY_PATH))
    assert result.returncode == 0, result.stderr
    assert key.read_text() == MASTER_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    # A new inode renamed over the old name: a reader sees the old file or the new, whole.
    assert key.stat().st_ino != before
    assert temp_files(key.parent) == []


def test_an_inherited_value_moves_to_its_file(tmp_path: Path, app: Path) -> None:
    """ECS's own ``secrets`` put values in the environment: the agent can move them to files,
    without any AWS call."""
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
    }
    out = app / "report.json"
    result = run(app, env, reporter(out, KEY_PATH))
    assert result.returncode == 0, result.stderr
    [seen] = reports(out)
    assert seen["files"] == {KEY_PATH: MASTER_KEY}
    assert "RAILS_MASTER_KEY" not in seen["env"]


def test_check_shows_the_file_and_env_leaves_it_out(
    moto: MotoServer, boto_client: Any, app: Path
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/rails_master_key", Value=MASTER_KEY, Type="SecureString")
    ssm.put_parameter(Name="/app/prod/database_url", Value="postgres://db/x", Type="SecureString")
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
    }
    check = run(app, env, [], args=["check"])
    assert check.returncode == 0, check.stderr
    rows = {line.split()[0]: line.split() for line in check.stdout.splitlines()}
    assert rows["RAILS_MASTER_KEY"][1:3] == ["ssm", "/app/prod/rails_master_key"]
    assert rows["RAILS_MASTER_KEY"][-2:] == ["file", KEY_PATH]
    assert "file" not in rows["DATABASE_URL"]
    revealed = run(app, env, [], args=["env", "--format", "json", "--reveal"])
    assert revealed.returncode == 0, revealed.stderr
    assert json.loads(revealed.stdout) == {"DATABASE_URL": "postgres://db/x"}
    # Neither subcommand writes the file.
    assert not (app / KEY_PATH).exists()
    assert MASTER_KEY not in check.stdout + check.stderr + revealed.stderr


def test_a_file_named_as_its_folder_is_written(app: Path) -> None:
    (app / "k").mkdir()
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": "RAILS_MASTER_KEY=k/k",
    }
    result = run(app, env, reporter(app / "report.json", "k/k"))
    assert result.returncode == 0, result.stderr
    assert reports(app / "report.json")[0]["files"] == {"k/k": MASTER_KEY}


def test_two_variables_for_one_file_is_78(app: Path) -> None:
    env = base_env("http://127.0.0.1:9") | {
        "A_KEY": "a",
        "B_KEY": "b",
        "SECRETS_AGENT_FILES": f"A_KEY=x.key,B_KEY={app}/./x.key",
    }
    result = run(app, env, reporter(app / "report.json"))
    assert result.returncode == 78, result.stderr
    assert "same file as A_KEY's 'x.key'" in result.stderr
    assert not (app / "x.key").exists()


def test_a_folder_another_user_made_in_a_shared_folder_is_78(app: Path) -> None:
    """/dev/shm-like: sticky and world-writable. A folder in it that another user made (and
    could empty or fill at will) is refused; one of root's is not."""
    if os.geteuid() != 0:
        pytest.skip("gives a folder to another user; runs as root (as .ci/run does)")
    shared = app / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "theirs").mkdir()
    os.chown(shared / "theirs", 54321, 54321)
    (shared / "roots").mkdir()
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": "RAILS_MASTER_KEY=shared/theirs/x.key",
    }
    result = run(app, env, reporter(app / "report.json"))
    assert result.returncode == 78, result.stderr
    assert "user 54321" in result.stderr and "shared/theirs/x.key" in result.stderr
    assert list((shared / "theirs").iterdir()) == []
    env["SECRETS_AGENT_FILES"] = "RAILS_MASTER_KEY=shared/roots/x.key"
    result = run(app, env, reporter(app / "report.json"))
    assert result.returncode == 0, result.stderr
    assert (shared / "roots" / "x.key").read_text() == MASTER_KEY


def test_a_mapped_variable_nothing_provides_is_66(
    moto: MotoServer, boto_client: Any, app: Path
) -> None:
    boto_client("ssm").put_parameter(
        Name="/app/prod/database_url", Value="postgres://db/x", Type="SecureString"
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "RAILS_MASTER_KEY": "",  # empty counts as unset
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
    }
    out = app / "report.json"
    for command, args in ((reporter(out), None), ([], ["check"])):
        result = run(app, env, command, args=args)
        assert result.returncode == 66, result.stderr
        [line] = result.stderr.strip().splitlines()[-1:]
        assert "RAILS_MASTER_KEY" in line and KEY_PATH in line
    assert not out.exists()
    assert not (app / KEY_PATH).exists()


def refused_paths(app: Path, outside: Path) -> dict[str, tuple[str, str]]:
    """kind -> (the path as configured, a word the error line holds). Builds what each needs."""
    outside.mkdir()
    (app / "linked").symlink_to(outside, target_is_directory=True)
    (app / "link.key").symlink_to(outside / "target.key")
    (app / "a-folder").mkdir()
    os.mkfifo(app / "fifo")
    device = "/dev/null"
    if os.geteuid() == 0:
        os.mknod(app / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        device = "null"
    return {
        "outside the roots": ("/etc/secrets-agent-test.key", "outside"),
        "outside, under /tmp": (str(outside / "x.key"), "outside"),
        "outside, a device": ("/dev/null", "outside"),
        "dot-dot": ("config/../../x.key", "'..'"),
        "absolute dot-dot": ("/dev/shm/../../etc/x.key", "'..'"),
        "symlinked folder": ("linked/x.key", "symbolic link"),
        "symlinked file": ("link.key", "symbolic link"),
        "existing folder": ("a-folder", "folder"),
        "a root itself": ("/dev/shm", "folder"),
        "trailing slash": ("config/", "folder"),
        "a device under the root": (device, "device" if device == "null" else "outside"),
        "a fifo": ("fifo", "not a regular file"),
        "through a file": ("fifo/x.key", "not a folder"),
    }


KINDS = [
    "outside the roots",
    "outside, under /tmp",
    "outside, a device",
    "dot-dot",
    "absolute dot-dot",
    "symlinked folder",
    "symlinked file",
    "existing folder",
    "a root itself",
    "trailing slash",
    "a device under the root",
    "a fifo",
    "through a file",
]


@pytest.mark.parametrize("kind", KINDS)
def test_refused_paths_are_78_before_anything_runs(kind: str, app: Path, tmp_path: Path) -> None:
    path, word = refused_paths(app, tmp_path / "outside")[kind]
    # Nothing to fetch from AWS: a refused path must stop the agent before any value is used.
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={path}",
    }
    out = app / "report.json"
    result = run(app, env, reporter(out))
    assert result.returncode == 78, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "RAILS_MASTER_KEY" in lines[0] and repr(path) in lines[0] and word in lines[0]
    assert MASTER_KEY not in result.stderr
    assert not out.exists()
    # Nothing was written through the links, or anywhere else.
    assert list((tmp_path / "outside").iterdir()) == []
    assert not Path("/etc/secrets-agent-test.key").exists()
    assert temp_files(app) == []


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("RAILS_MASTER_KEY", "VARIABLE=PATH"),
        ("LD_PRELOAD=x.so", "protected"),
        ("A=x,A=y", "twice"),
        ("A=x,B=x", "twice"),
        ("1A=x", "not a variable name"),
    ],
)
def test_a_malformed_setting_is_78(value: str, word: str, app: Path) -> None:
    env = base_env("http://127.0.0.1:9") | {"SECRETS_AGENT_FILES": value}
    result = run(app, env, reporter(app / "report.json"))
    assert result.returncode == 78, result.stderr
    assert "SECRETS_AGENT_FILES" in result.stderr and word in result.stderr
    assert not (app / "report.json").exists()


def mount_wrapper(script: str) -> list[str]:
    """Run the agent inside a new mount namespace after ``script`` (which gets the folder as
    $1 and must end by running ``"$@"`` after a shift)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def can_mount() -> bool:
    probe = subprocess.run(
        [*mount_wrapper('mount -t tmpfs -o size=4k tmpfs "$1"'), "/mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


READ_ONLY = 'mount -t tmpfs -o ro,size=64k tmpfs "$1" && cd "$1" && shift && "$@"'
# One page, filled before the agent runs: creating the temporary file works, writing fails.
FULL = (
    'mount -t tmpfs -o size=4k tmpfs "$1" && cd "$1" && '
    '{ head -c 8192 /dev/zero > fill 2>/dev/null; true; } && shift && "$@"; '
    'code=$?; ls -A > "$OUT_LISTING"; exit $code'
)


@pytest.mark.parametrize(
    ("script", "errno_name"), [(READ_ONLY, "EROFS"), (FULL, "ENOSPC")], ids=["read-only", "full"]
)
def test_a_failed_write_is_74_and_nothing_starts(
    script: str, errno_name: str, tmp_path: Path
) -> None:
    """As root a folder's mode does not stop a write: a read-only or a full tmpfs, mounted in
    a mount namespace of the agent's own, does."""
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs; runs as root (as .ci/run does)")
    assert can_mount(), "unshare --mount with a tmpfs must work as root"
    folder = tmp_path / "mounted"
    folder.mkdir()
    out = tmp_path / "report.json"
    listing = tmp_path / "listing"
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": "RAILS_MASTER_KEY=master.key",
        "OUT_LISTING": str(listing),
    }
    result = run(tmp_path, env, reporter(out), wrapper=[*mount_wrapper(script), str(folder)])
    assert result.returncode == 74, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert errno_name in lines[0] and "RAILS_MASTER_KEY" in lines[0] and "master.key" in lines[0]
    assert "not started" in lines[0]
    assert not out.exists()
    if script == FULL:
        # The temporary file was created, then removed when the write failed.
        assert listing.read_text().split() == ["fill"]


# -- supervise mode ------------------------------------------------------------------------------
INTERVAL = 1.0
WITHIN = 2 * INTERVAL * 1.2 + 3 + 10


def supervised(app: Path, env: Mapping[str, str], out: Path) -> subprocess.Popen[bytes]:
    err = app / f"stderr-{os.urandom(3).hex()}.log"
    with err.open("wb") as fh:
        return subprocess.Popen(
            rotating_agent_argv(reporter(out, KEY_PATH, wait=True)),
            env=dict(env),
            cwd=str(app),
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )


def stderr_events(app: Path, name: str) -> list[dict[str, Any]]:
    logs = app.glob("stderr-*.log")
    return [e for log in logs for e in events(log.read_text(errors="replace"), name)]


@pytest.mark.parametrize("on_change", ["restart", "exit"])
def test_rotation_rewrites_the_file_before_the_restart(
    on_change: str, moto: MotoServer, boto_client: Any, app: Path
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/rails_master_key", Value="key-one", Type="SecureString")
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
        "SECRETS_AGENT_WATCH_INTERVAL": str(INTERVAL),
        "SECRETS_AGENT_STOP_TIMEOUT": "3",
        "SECRETS_AGENT_ON_CHANGE": on_change,
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    out = app / "starts.jsonl"
    proc = supervised(app, env, out)
    try:
        wait_until(lambda: reports(out), timeout=30, what="the first start")
        assert reports(out)[0]["files"] == {KEY_PATH: "key-one"}
        assert "RAILS_MASTER_KEY" not in reports(out)[0]["env"]
        first_inode = (app / KEY_PATH).stat().st_ino
        ssm.put_parameter(
            Name="/app/prod/rails_master_key", Value="key-two", Type="SecureString", Overwrite=True
        )
        if on_change == "exit":
            assert proc.wait(timeout=WITHIN) == 0
            # The task is to be replaced: the file keeps what the stopped command had.
            assert len(reports(out)) == 1
            assert (app / KEY_PATH).read_text() == "key-one"
            assert (app / KEY_PATH).stat().st_ino == first_inode
            return
        wait_until(lambda: len(reports(out)) >= 2, timeout=WITHIN, what="the restart")
        # The old command still had the old file when it was asked to stop: the file is
        # rewritten between the stop and the new start.
        assert [x["stopping"] for x in lines(out) if "stopping" in x] == [{KEY_PATH: "key-one"}]
        second = reports(out)[1]
        # The restarted command found the new value in place when it started.
        assert second["files"] == {KEY_PATH: "key-two"}
        assert "RAILS_MASTER_KEY" not in second["env"]
        key = app / KEY_PATH
        assert key.read_text() == "key-two" and stat.S_IMODE(key.stat().st_mode) == 0o400
        assert key.stat().st_ino != first_inode
        assert temp_files(key.parent) == []
        restarted = stderr_events(app, "command restarted")
        assert restarted and restarted[0]["changed"] == ["RAILS_MASTER_KEY"]
        # A parameter that disappears leaves nothing to write: the check fails, the command
        # and its file are kept.
        ssm.delete_parameter(Name="/app/prod/rails_master_key")
        ssm.put_parameter(Name="/app/prod/other", Value="x", Type="String")
        wait_until(
            lambda: stderr_events(app, "secrets check failed; command kept"),
            timeout=WITHIN,
            what="a failed check",
        )
        failed = stderr_events(app, "secrets check failed; command kept")[0]
        assert "RAILS_MASTER_KEY" in failed["error"]
        assert len(reports(out)) == 2
        assert key.read_text() == "key-two"
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc, out)
    for log in app.glob("stderr-*.log"):
        text = log.read_text(errors="replace")
        assert "key-one" not in text and "key-two" not in text


def test_supervise_start_waits_for_nothing_else(app: Path) -> None:
    """Supervise mode with no AWS source: the inherited value still moves to its file."""
    env = base_env("http://127.0.0.1:9") | {
        "RAILS_MASTER_KEY": MASTER_KEY,
        "SECRETS_AGENT_FILES": f"RAILS_MASTER_KEY={KEY_PATH}",
        "SECRETS_AGENT_WATCH_INTERVAL": "5",
    }
    out = app / "starts.jsonl"
    proc = supervised(app, env, out)
    try:
        wait_until(lambda: reports(out), timeout=30, what="the start")
        assert reports(out)[0]["files"] == {KEY_PATH: MASTER_KEY}
        assert "RAILS_MASTER_KEY" not in reports(out)[0]["env"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_failed_write_at_a_restart_is_74(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """The file system turns read-only while the command runs: at the rotation the old command
    is stopped, the new file cannot be written, and the agent exits 74 without a new start."""
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs; runs as root (as .ci/run does)")
    assert can_mount(), "unshare --mount with a tmpfs must work as root"
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/app/prod/rails_master_key", Value="key-one", Type="SecureString")
    folder = tmp_path / "mounted"
    folder.mkdir()
    out = tmp_path / "starts.jsonl"
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app/prod",
        "SECRETS_AGENT_FILES": "RAILS_MASTER_KEY=master.key",
        "SECRETS_AGENT_WATCH_INTERVAL": str(INTERVAL),
        "SECRETS_AGENT_STOP_TIMEOUT": "3",
        "SECRETS_AGENT_LOG_FORMAT": "json",
    }
    script = 'mount -t tmpfs -o size=1m tmpfs "$1" && cd "$1" && shift && exec "$@"'
    err = tmp_path / "stderr.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [
                *mount_wrapper(script),
                str(folder),
                *rotating_agent_argv(reporter(out, "master.key", wait=True)),
            ],
            env=dict(env),
            cwd=str(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    try:
        wait_until(lambda: reports(out), timeout=30, what="the first start")
        assert reports(out)[0]["files"] == {"master.key": "key-one"}
        # proc is the agent itself (unshare and sh exec it), in its own mount namespace.
        remount = subprocess.run(
            [
                "nsenter",
                "--target",
                str(proc.pid),
                "--mount",
                "mount",
                "-o",
                "remount,ro",
                str(folder),
            ],
            capture_output=True,
            text=True,
        )
        assert remount.returncode == 0, remount.stderr
        ssm.put_parameter(
            Name="/app/prod/rails_master_key", Value="key-two", Type="SecureString", Overwrite=True
        )
        assert proc.wait(timeout=WITHIN) == 74, err.read_text()
    finally:
        stop(proc, out)
    assert len(reports(out)) == 1
    assert [x["stopping"] for x in lines(out) if "stopping" in x] == [{"master.key": "key-one"}]
    text = err.read_text()
    last = error_line(text)
    assert last.startswith("secrets-agent: I/O error:") and "EROFS" in last, text
    assert "RAILS_MASTER_KEY" in last and "master.key" in last
    assert "key-one" not in text and "key-two" not in text
