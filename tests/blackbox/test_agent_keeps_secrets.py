"""The agent's own processes keep their secrets from the app they start (same uid, same files).

Each case runs the real entrypoint against moto and attacks it the way an app (or code that got
into it) would: modules planted where the check process would import them, a payload written
into the supervisor's answer pipe through /proc, a core dump or /proc read of the supervisor.
Where root's CAP_SYS_PTRACE would hide what the kernel refuses to an ordinary process, the
agent and everything it starts run without any capability (an empty bounding set): the same uid
as the app, and no more, as in a container whose user is not root.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENTRYPOINT, ROOT, base_env
from tests.support.moto_server import MotoServer
from tests.support.supervised import SHORT_INTERVAL_ENTRYPOINT, wait_until

PR_CAPBSET_DROP = 24


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every process of the test can write (tmp_path is not always)."""
    path = Path(tempfile.mkdtemp(prefix="agent-keeps-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def without_capabilities() -> None:
    """After execve, no capability at all, root or not: what an ordinary uid can do."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


class Agent:
    """The real entrypoint in supervise mode (a check every 0.1 s), the command ``app``."""

    def __init__(
        self,
        tmp: Path,
        env: dict[str, str],
        app: str,
        *,
        cwd: Path,
        unprivileged: bool = False,
        preexec: Callable[[], None] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.stderr_path = tmp / f"agent-stderr-{os.urandom(3).hex()}"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(SHORT_INTERVAL_ENTRYPOINT),
                    sys.executable,
                    "-c",
                    textwrap.dedent(app),
                    *args,
                ],
                env=env,
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=preexec or (without_capabilities if unprivileged else None),
                start_new_session=True,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def supervise_env(moto: MotoServer, **extra: str) -> dict[str, str]:
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/app",
        "SECRETS_AGENT_WATCH_INTERVAL": "1",
        "SECRETS_AGENT_LOG_LEVEL": "debug",
        "SECRETS_AGENT_LOG_FORMAT": "json",
        "SECRETS_AGENT_TIMEOUT": "20",
    }
    env.update(extra)
    return env


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def put(boto_client: Any, name: str, value: str) -> None:
    boto_client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


# -- the check process imports nothing from the app ---------------------------------------------
PLANTED = ("pickle", "json", "botocore", "boto3", "urllib3", "sitecustomize", "usercustomize")


def test_modules_planted_by_the_app_never_run_in_the_check_process(
    shared_dir: Path, moto: MotoServer, boto_client: Any
) -> None:
    """The app writes modules into its working directory (the Rails root) and into a directory
    on PYTHONPATH, after the agent started; the next check imports none of them (each would
    write a marker, with the AWS credentials it can see), and the rotation still happens."""
    put(boto_client, "/app/token", "v1")
    app_dir = shared_dir / "app"
    lib_dir = shared_dir / "lib"
    marks = shared_dir / "marks"
    for folder in (app_dir, lib_dir, marks):
        folder.mkdir()
    report = shared_dir / "tokens"
    # Each module leaves a marker when a check process imports it (the app, a Python program
    # here, imports the sitecustomize on its own PYTHONPATH itself: its business).
    planted = {
        name: "import os\n"
        "if b'check_' + b'process' in open('/proc/self/cmdline', 'rb').read():\n"
        f"    open({str(marks / name)!r}, 'w').write(os.environ.get('AWS_SECRET_ACCESS_KEY', ''))\n"
        for name in PLANTED
    }
    app = f"""
        import os
        for name, code in {planted!r}.items():
            for folder in ({str(app_dir)!r}, {str(lib_dir)!r}):
                with open(os.path.join(folder, name + ".py"), "w") as f:
                    f.write(code)
        with open({str(report)!r}, "a") as f:
            f.write(os.environ["TOKEN"] + "\\n")
        import time
        time.sleep(60)
    """
    env = supervise_env(
        moto,
        PYTHONPATH=str(lib_dir),
        PYTHONSTARTUP=str(lib_dir / "sitecustomize.py"),
        PYTHONINSPECT="1",
    )
    agent = Agent(shared_dir, env, app, cwd=app_dir)
    try:
        wait_until(report.exists, timeout=30, what=f"the app's first start: {agent.stderr()}")
        put(boto_client, "/app/token", "v2")
        wait_until(
            lambda: report.read_text().split() == ["v1", "v2"],
            timeout=30,
            what=f"a restart with the new value: {agent.stderr()}",
        )
        assert sorted(os.listdir(marks)) == []
    finally:
        agent.stop()


# -- the answer pipe carries no code --------------------------------------------------------------
ATTACKER = """
import os, pickle, sys, time

class Boom:
    def __reduce__(self):
        return (open, (sys.argv[2], "w"))

payload = pickle.dumps({"env": Boom()})
# started by the app, which the supervisor started
with open(f"/proc/{os.getppid()}/stat") as f:
    supervisor = int(f.read().rsplit(")", 1)[1].split()[1])
opened = []
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not os.path.exists(sys.argv[2]):
    try:
        fds = os.listdir(f"/proc/{supervisor}/fd")
    except OSError as exc:
        opened.append(f"listdir {type(exc).__name__}")
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{supervisor}/fd/{fd}")
        except OSError:
            continue
        if not target.startswith("pipe:"):
            continue
        try:
            w = os.open(f"/proc/{supervisor}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            opened.append(f"open {type(exc).__name__}")
            continue
        opened.append("written")
        try:
            os.write(w, payload)
        except OSError:
            pass
        os.close(w)
    time.sleep(0.05)
with open(sys.argv[1] + ".part", "w") as f:
    f.write(" ".join(sorted(set(opened))))
os.rename(sys.argv[1] + ".part", sys.argv[1])
"""


def test_a_pickle_written_into_the_supervisors_pipes_runs_no_code(
    shared_dir: Path, moto: MotoServer, boto_client: Any
) -> None:
    """The app (same uid, no capability) opens every pipe of the supervisor through /proc/PPID/fd
    and writes a pickle whose loading would create a file, while checks run. Nothing is
    created: the supervisor's fds cannot be opened, and its answers are not pickle anyway."""
    put(boto_client, "/app/token", "v1")
    marker = shared_dir / "pwned"
    result = shared_dir / "result"
    attacker = shared_dir / "attacker.py"
    attacker.write_text(ATTACKER)
    app = f"""
        import subprocess, sys
        subprocess.run([sys.executable, {str(attacker)!r}, {str(result)!r}, {str(marker)!r}])
        import time
        time.sleep(60)
    """
    agent = Agent(shared_dir, supervise_env(moto), app, cwd=shared_dir, unprivileged=True)
    try:
        wait_until(result.exists, timeout=60, what=f"the attacker: {agent.stderr()}")
        assert not marker.exists()
        assert "written" not in result.read_text(), result.read_text()
        assert agent.proc.poll() is None  # still supervising
    finally:
        agent.stop()


def test_a_pickle_in_the_answer_is_refused_not_loaded(tmp_path: Path) -> None:
    """Whatever reaches the answer pipe, the supervisor only parses it as JSON."""
    from secrets_agent.supervise.messages import decode_answer, encode_answer

    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    with pytest.raises(ValueError):
        decode_answer(pickle.dumps({"env": Boom()}))
    assert not marker.exists()
    # Every value an environment variable can hold crosses unchanged, surrogates included.
    env = {"A": "é\u2028\U0001f600\\\"'\x7f\x01", "B": "\udcff\udc80", "C": ""}
    answer = {"env": env, "fingerprint": {"ssm:/a": ["3", "d1"], "ssm:/b": [None, "d2"]}}
    decoded = decode_answer(encode_answer(answer))
    assert decoded["env"] == env
    assert decoded["fingerprint"] == {"ssm:/a": ("3", "d1"), "ssm:/b": (None, "d2")}


# -- no dump, no /proc reads of the supervisor and the check process ----------------------------
READER = """
import os, sys, time
# started by the app, which the supervisor started
with open(f"/proc/{os.getppid()}/stat") as f:
    supervisor = int(f.read().rsplit(")", 1)[1].split()[1])
out = {}
def read(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return "read" if f.read() else "empty"
    except OSError as exc:
        return type(exc).__name__
out["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
out["supervisor"] = read(supervisor)
out["app"] = read(os.getpid())
child = __import__("subprocess").Popen([sys.executable, "-c", "import time; time.sleep(5)"])
time.sleep(0.5)
out["app_child"] = read(child.pid)
child.kill()
# a check process: another child of the supervisor, looked for while checks run
seen = set()
deadline = time.monotonic() + 15
while time.monotonic() < deadline and "check" not in out:
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), child.pid):
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == supervisor and b"check_process" in cmdline:
            # Dumpable from its execve until its first statement: read until it is not.
            pid, result = int(entry), "gone"
            while os.path.exists(f"/proc/{pid}"):
                result = read(pid)
                if result != "read":
                    break
            if result != "gone":
                out["check"] = result
                break
    time.sleep(0.01)
with open(sys.argv[1] + ".part", "w") as f:
    f.write(__import__("json").dumps(out))
os.rename(sys.argv[1] + ".part", sys.argv[1])
"""


def test_the_supervisor_and_check_processes_are_not_dumpable_the_app_is(
    shared_dir: Path, moto: MotoServer, boto_client: Any
) -> None:
    """A same-uid process can read neither the supervisor's nor a check process's
    /proc/PID/environ (nor dump their memory); the app and its children keep their own
    dumpable flag (execve resets it). A check process is dumpable from its execve to its first
    statement, before it reads its request: the reader keeps reading until it no longer can."""
    put(boto_client, "/app/token", "v1")
    result = shared_dir / "result"
    reader = shared_dir / "reader.py"
    reader.write_text(READER)
    app = f"""
        import subprocess, sys
        subprocess.run([sys.executable, {str(reader)!r}, {str(result)!r}])
        import time
        time.sleep(60)
    """
    agent = Agent(shared_dir, supervise_env(moto), app, cwd=shared_dir, unprivileged=True)
    try:
        wait_until(result.exists, timeout=60, what=f"the reader: {agent.stderr()}")
        seen = json.loads(result.read_text())
        assert seen == {
            "caps": "0000000000000000",
            "supervisor": "PermissionError",
            "check": "PermissionError",
            "app": "read",
            "app_child": "read",
        }
    finally:
        agent.stop()


def test_the_supervisor_leaves_no_core_dump(
    shared_dir: Path, moto: MotoServer, boto_client: Any
) -> None:
    """The app (same uid) sends SIGABRT to the supervisor, whose default action dumps core:
    the kernel writes no core file of it (it would hold every secret). A process of the app
    that aborts still dumps: dumps are possible here."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core dumps do not go to the working directory here ({pattern})")
    put(boto_client, "/app/token", "v1")
    app_dir = shared_dir / "app"
    own = shared_dir / "own"
    for folder in (app_dir, own):
        folder.mkdir()
        folder.chmod(0o777)
    app = f"""
        import os, signal, subprocess, sys, time
        subprocess.run(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"],
            cwd={str(own)!r},
        )
        os.kill(os.getppid(), signal.SIGABRT)
        time.sleep(60)
    """

    def with_cores() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        without_capabilities()

    agent = Agent(shared_dir, supervise_env(moto), app, cwd=app_dir, preexec=with_cores)
    try:
        agent.proc.wait(60)
        assert agent.proc.returncode == -signal.SIGABRT, agent.stderr()
        assert [p.name for p in own.iterdir() if p.name.startswith("core")], "no dump at all"
        assert not [p.name for p in app_dir.iterdir() if p.name.startswith("core")]
    finally:
        agent.stop()


# -- the check process's own environment -----------------------------------------------------------
def test_check_processes_get_no_variable_mapped_to_a_file(
    shared_dir: Path, moto: MotoServer, boto_client: Any
) -> None:
    """A value of SECRETS_AGENT_FILES inherited from the task definition goes to its file, not
    into any check process's environment (nor any PYTHON* variable)."""
    put(boto_client, "/app/token", "v1")
    app_dir = shared_dir / "app"
    app_dir.mkdir()
    started = shared_dir / "started"
    app = f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(60)
    """
    env = supervise_env(
        moto,
        RAILS_MASTER_KEY="inherited-master-key-0123456789",
        SECRETS_AGENT_FILES="RAILS_MASTER_KEY=master.key",
        PYTHONWARNINGS="default",
    )
    agent = Agent(shared_dir, env, app, cwd=app_dir)
    try:
        wait_until(started.exists, timeout=30, what=f"the app: {agent.stderr()}")
        assert (app_dir / "master.key").read_text() == "inherited-master-key-0123456789"
        seen: list[bytes] = []

        def a_check_process_environment() -> bool:
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or _ppid(int(entry)) != agent.proc.pid:
                    continue
                try:
                    if b"check_process" not in Path(f"/proc/{entry}/cmdline").read_bytes():
                        continue
                    seen.append(Path(f"/proc/{entry}/environ").read_bytes())
                except OSError:
                    continue
                return bool(seen[-1])
            return False

        wait_until(a_check_process_environment, timeout=30, what="a check process")
        names = {item.split(b"=", 1)[0] for item in seen[-1].split(b"\0") if item}
        assert b"PARAMETER_STORE_PREFIX" in names  # the environment it was given, ...
        assert b"RAILS_MASTER_KEY" not in names  # ... without the file's variable
        assert not [n for n in names if n.startswith(b"PYTHON")]
        assert b"inherited-master-key" not in seen[-1]
    finally:
        agent.stop()


# -- the command's environment is the inherited one plus the secrets ----------------------------
def c_locale_env(moto: MotoServer | None) -> dict[str, str]:
    """The C locale, as in a container image that sets no LANG: CPython coerces it."""
    env = base_env(moto.url if moto else None)
    del env["LANG"]
    return env


def command_sees(env: dict[str, str]) -> str:
    """What a shell started by the agent sees of LC_CTYPE and TOKEN (not a Python program:
    it would coerce its own locale)."""
    return through_entrypoint(["sh", "-c", 'echo "${LC_CTYPE-unset} ${TOKEN-unset}"'], env).strip()


def through_entrypoint(command: list[str], env: dict[str, str]) -> str:
    """The stdout of ``command`` started through the real entrypoint, which must succeed."""
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), *command],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("mode", ["exec", "supervise", "nothing-to-resolve"])
def test_pythons_locale_coercion_does_not_reach_the_command(
    moto: MotoServer, boto_client: Any, mode: str
) -> None:
    put(boto_client, "/app/token", "v1")
    env = c_locale_env(None if mode == "nothing-to-resolve" else moto)
    if mode != "nothing-to-resolve":
        env["PARAMETER_STORE_PREFIX"] = "/app"
    if mode == "supervise":
        env["SECRETS_AGENT_WATCH_INTERVAL"] = "60"
    token = "unset" if mode == "nothing-to-resolve" else "v1"
    assert command_sees(env) == f"unset {token}"
    # An LC_CTYPE given to the agent is the command's, as given (CPython coerces "C" too).
    assert command_sees(env | {"LC_CTYPE": "C"}) == f"C {token}"
    assert command_sees(env | {"LC_CTYPE": "C.UTF-8"}) == f"C.UTF-8 {token}"


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed")
def test_ruby_keeps_its_default_encoding_under_the_agent(
    tmp_path: Path, moto: MotoServer, boto_client: Any
) -> None:
    put(boto_client, "/app/token", "v1")
    env = c_locale_env(moto) | {"PARAMETER_STORE_PREFIX": "/app"}
    ruby = ["ruby", "-e", "print Encoding.default_external"]
    alone = subprocess.run(ruby, env=env, capture_output=True, text=True, check=True).stdout
    assert through_entrypoint(ruby, env) == alone == "US-ASCII"


def test_a_relayed_line_is_escaped_and_capped_like_every_other() -> None:
    """What arrives on a check process's log pipe is written through the same escaping as
    the agent's own lines: no terminal control, no forged second line, no line past the cap."""
    import io

    from secrets_agent.core.printable import MAX_LINE
    from secrets_agent.output.logs import Logger
    from secrets_agent.supervise.isolated import relay_line

    out = io.StringIO()
    log = Logger(level="debug", fmt="json", stream=out)
    relay_line(log, b'{"event":"x"}\x1b[2J\xe2\x80\xa8forged\r' + b"y" * 20000)
    written = out.getvalue()
    assert written.count("\n") == 1 and written.endswith("\n")
    assert "\x1b" not in written and "\u2028" not in written and "\r" not in written
    assert "\\u001b[2J" in written
    assert len(written.encode()) <= MAX_LINE + 1
