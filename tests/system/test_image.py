"""The real image: docker/Dockerfile built as users copy it, run as ECS would run it.

The base is built offline from Debian (tests/support/image_support.py); the containers use the
host's
network, so the agent reaches the test moto server on 127.0.0.1 as it would reach AWS. Needs a
docker daemon and debootstrap (.ci/run installs and starts both): without them the test fails,
it does not skip. Secrets are compared by SHA-256, never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AWS_TEST_ENV
from tests.support.image_support import Images, build_images, docker, http_get
from tests.support.moto_server import MotoServer, free_port

PREFIX = "/kptboard/prod"
KEY = "f00d" * 32 + "\n$not-a-var 'quoted' \"double\""
ROTATED = "beef" * 32
RUNNER_DIGEST = 'puts Digest::SHA256.hexdigest(ENV.fetch("SECRET_KEY_BASE", ""))'
MEASURED: dict[str, Any] = {}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    built = build_images(tmp_path_factory.mktemp("image"))
    MEASURED.update(
        base_image=built.base,
        base_build_seconds=round(built.base_seconds, 1),
        app_build_seconds=round(built.app_seconds, 1),
        app_image_mib=round(built.app_bytes / 2**20),
    )
    yield built
    # Figures for the CI log (.ci/run prints this file); nothing here asserts a duration.
    report = os.environ.get("IMAGE_TEST_REPORT")
    if report:
        Path(report).write_text(json.dumps(MEASURED, indent=2) + "\n")


class Container:
    """``docker run -d --network host IMAGE bundle exec rails server``, on a free port."""

    def __init__(
        self,
        image: str,
        env: Mapping[str, str],
        *,
        entrypoint: str | None = None,
        prefix: tuple[str, ...] = ("bundle", "exec"),
        port: int | None = None,
        server: tuple[str, ...] = ("rails", "server", "-b", "127.0.0.1", "-p", "{port}"),
    ) -> None:
        self.port = port or free_port()
        self.name = f"secrets-agent-test-{os.urandom(4).hex()}"
        args = ["run", "-d", "--name", self.name, "--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        self.started = time.monotonic()
        docker(*args, image, *prefix, *(arg.format(port=self.port) for arg in server))

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.port, path)

    def wait_ready(self, timeout: float = 120) -> tuple[int, float]:
        """The first HTTP status of /health and the seconds from `docker run` to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _ = self.get("/health")
                return status, time.monotonic() - self.started
            except OSError:
                if not self.running():
                    raise AssertionError(f"container exited: {self.logs()}") from None
                time.sleep(0.1)
        raise AssertionError(f"no HTTP answer within {timeout}s: {self.logs()}")

    def secret_digest(self) -> tuple[str, int]:
        status, body = self.get("/secret")
        assert status == 200, (status, self.logs())
        data = json.loads(body)
        return data["secret_key_base_sha256"], data["pid"]

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *argv, check=False, timeout=120)

    def proc_status(self, pid: int) -> dict[str, str]:
        """/proc/PID/status inside the container, {} once the process is gone."""
        out = self.exec("sh", "-c", f"cat /proc/{pid}/status 2>/dev/null || true").stdout
        fields = (line.partition(":") for line in out.splitlines())
        return {key: value.strip() for key, _, value in fields}

    def pid1(self) -> str:
        return self.exec("cat", "/proc/1/cmdline").stdout.replace("\0", " ")

    def orphan(self) -> int:
        """A process whose parent is gone: `sh` starts `sleep` and exits before it."""
        out = self.exec("sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & echo $!").stdout
        return int(out.strip())

    def running(self) -> bool:
        state = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False).stdout
        return state.strip() == "true"

    def stop(self) -> int:
        """`docker stop` (SIGTERM, SIGKILL after 30 s) and the container's exit code."""
        docker("stop", "-t", "30", self.name, timeout=60)
        return int(docker("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout)

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return (proc.stdout + proc.stderr)[-4000:]

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def task_env(moto: MotoServer, **extra: str) -> dict[str, str]:
    """What a task definition would set, pointed at the moto server instead of AWS."""
    return {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": moto.url,
        "PARAMETER_STORE_PREFIX": PREFIX,
        "SECRETS_AGENT_LOG_FORMAT": "json",
        **extra,
    }


def wait_exit(container: Container, pid: int, *, reaped: bool, timeout: float = 30) -> str:
    """Wait until ``pid`` has exited (a zombie) or, with ``reaped``, is gone; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        state = container.proc_status(pid).get("State", "gone")
        done = state == "gone" if reaped else not state.startswith(("S", "R"))
        if done or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_exec_mode_boots_rails_with_the_secret_and_stops_as_the_command_does(
    images: Images, moto: MotoServer, boto_client: Any
) -> None:
    boto_client("ssm").put_parameter(
        Name=f"{PREFIX}/secret_key_base", Value=KEY, Type="SecureString"
    )
    # The control: the same command as PID 1 without the agent. It gets no secret (Rails in
    # production answers 500), and its exit status on `docker stop` is what exec mode must give.
    bare = Container(images.app, task_env(moto), entrypoint="bundle", prefix=("exec",))
    try:
        status, _ = bare.wait_ready()
        assert status == 500, bare.logs()
        # Rails as PID 1 reaps nothing: the orphan check below can see a zombie.
        orphan = bare.orphan()
        assert bare.proc_status(orphan).get("PPid") == "1"
        assert wait_exit(bare, orphan, reaped=False).startswith("Z")
        time.sleep(1)
        assert bare.proc_status(orphan).get("State", "gone").startswith("Z")
        bare_code = bare.stop()
        assert "Gracefully stopping" in bare.logs()
    finally:
        bare.remove()

    app = Container(images.app, task_env(moto))
    try:
        status, seconds = app.wait_ready()
        MEASURED["exec_mode_run_to_first_200_seconds"] = round(seconds, 2)
        assert status == 200, app.logs()
        digest, pid = app.secret_digest()
        assert digest == sha(KEY)
        # The agent exec'd Rails: the server itself is PID 1.
        assert pid == 1
        assert "docker-entrypoint.py" not in app.pid1()

        # `docker exec` (and ECS Exec) starts with the task definition's environment: the
        # secret is not there, and `secrets-agent exec --` puts it there.
        plain = app.exec("bin/rails", "runner", 'puts ENV.key?("SECRET_KEY_BASE")')
        assert plain.returncode == 0 and plain.stdout.strip() == "false", plain.stderr[-2000:]
        through = app.exec("secrets-agent", "exec", "--", "bin/rails", "runner", RUNNER_DIGEST)
        assert through.returncode == 0, through.stderr[-2000:]
        assert through.stdout.strip().splitlines()[-1] == sha(KEY)
        assert KEY.splitlines()[0] not in through.stdout + through.stderr + app.logs()

        code = app.stop()
        logs = app.logs()
    finally:
        app.remove()
    # Exec mode: the command's own status on SIGTERM, after puma's graceful stop (not the
    # SIGKILL at the end of `docker stop`'s grace period, 137).
    assert "Gracefully stopping" in logs
    assert code == bare_code != 128 + signal.SIGKILL, logs


def test_supervise_mode_is_pid_1_reaps_restarts_on_rotation_and_stops_with_128_plus_n(
    images: Images, moto: MotoServer, boto_client: Any
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name=f"{PREFIX}/secret_key_base", Value=KEY, Type="SecureString")
    # The real image, the real floor: a check every 30 s (±15 %), so a rotation shows within ~35 s.
    app = Container(images.app, task_env(moto, SECRETS_AGENT_WATCH_INTERVAL="30"))
    try:
        status, seconds = app.wait_ready()
        MEASURED["supervise_mode_run_to_first_200_seconds"] = round(seconds, 2)
        assert status == 200, app.logs()
        digest, first_pid = app.secret_digest()
        assert digest == sha(KEY)
        assert "docker-entrypoint.py" in app.pid1()
        assert first_pid != 1

        orphan = app.orphan()
        assert app.proc_status(orphan).get("PPid") == "1"
        state = wait_exit(app, orphan, reaped=True)
        assert state == "gone", f"the orphan was not reaped: {state}"

        ssm.put_parameter(
            Name=f"{PREFIX}/secret_key_base", Value=ROTATED, Type="SecureString", Overwrite=True
        )
        deadline = time.monotonic() + 90
        digest, pid = digest, first_pid
        while digest != sha(ROTATED) and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                digest, pid = app.secret_digest()
            except OSError:  # between the old server's stop and the new one's listen
                continue
        assert digest == sha(ROTATED), app.logs()
        assert pid not in (first_pid, 1)
        assert "docker-entrypoint.py" in app.pid1()

        through = app.exec("secrets-agent", "exec", "--", "bin/rails", "runner", RUNNER_DIGEST)
        assert through.returncode == 0, through.stderr[-2000:]
        assert through.stdout.strip().splitlines()[-1] == sha(ROTATED)

        code = app.stop()
        logs = app.logs()
    finally:
        app.remove()
    # The agent forwarded SIGTERM; puma stopped gracefully and re-raised it, so the agent exits
    # 128+15 as the README promises.
    assert "Gracefully stopping" in logs
    assert code == 128 + signal.SIGTERM, logs


def test_supervise_mode_hands_over_the_socket_under_load(
    images: Images, moto: MotoServer, boto_client: Any
) -> None:
    """SECRETS_AGENT_LISTEN in the real image, the agent as PID 1: a rotation while a load
    generator runs starts the new Rails beside the old one on the agent's socket; every request
    answers 200, only the new secret's digest after the handoff, the old puma reaped."""
    from tests.load_client import Load, failures, summary

    ssm = boto_client("ssm")
    ssm.put_parameter(Name=f"{PREFIX}/secret_key_base", Value=KEY, Type="SecureString")
    ssm.put_parameter(Name=f"{PREFIX}/app_secret", Value="before", Type="SecureString")
    port = free_port()
    env = task_env(
        moto,
        SECRETS_AGENT_WATCH_INTERVAL="30",
        SECRETS_AGENT_LISTEN=f"tcp://127.0.0.1:{port}",
    )
    # puma itself: `rails server` refuses to start while another one's tmp/pids/server.pid
    # names a live process (Rack's pid file check), which the old server is during a handoff.
    app = Container(images.app, env, port=port, server=("puma", "-b", "tcp://127.0.0.1:{port}"))
    load = None
    try:
        status, _ = app.wait_ready()
        assert status == 200, app.logs()
        assert "docker-entrypoint.py" in app.pid1()
        deadline = time.monotonic() + 60
        while '"rotation":"handoff"' not in app.logs() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert '"rotation":"handoff"' in app.logs(), app.logs()
        load = Load(port, "/served/APP_SECRET", clients=4, max_seconds=240)
        time.sleep(2)
        ssm.put_parameter(
            Name=f"{PREFIX}/app_secret", Value="after", Type="SecureString", Overwrite=True
        )
        deadline = time.monotonic() + 120
        while '"event":"old command exited"' not in app.logs() and time.monotonic() < deadline:
            time.sleep(1)
        logs = app.logs()
        assert '"event":"old command exited"' in logs, logs
        handed = next(
            json.loads(line)
            for line in logs.splitlines()
            if '"event":"command handed over"' in line
        )
        switched = time.monotonic()
        time.sleep(2)
        answers = load.stop()
        load = None
        print("image handoff under load:", summary(answers))
        assert not failures(answers), failures(answers)[:5]
        assert {a.body["sha256"] for a in answers} == {sha("before"), sha("after")}
        late = {(a.body["pid"], a.body["sha256"]) for a in answers if a.started > switched}
        assert late == {(handed["pid"], sha("after"))}
        assert app.proc_status(handed["old_pid"]) == {}  # reaped by PID 1, no zombie
        code = app.stop()
    finally:
        if load is not None:
            load.stop()
        app.remove()
    assert code == 128 + signal.SIGTERM
