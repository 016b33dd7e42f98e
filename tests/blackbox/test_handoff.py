"""SECRETS_AGENT_LISTEN end to end: the test Rails app under Debian's puma 5 (with the
``sd_notify`` gem, Debian's ruby-sd-notify), supervised by the real entrypoint against moto,
while a load generator on 127.0.0.1 sends requests. A rotation must not fail one request.

Bounded by counts and time; asserted on behaviour (every answer 200, which process served with
which secret, processes and descriptors left), never on latency.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tests.load_client import Load, failures, summary
from tests.support.handoff_support import KEY, ListeningRails, gone, require_sd_notify, wait_gone
from tests.support.moto_server import MotoServer
from tests.support.postgres_support import postgres
from tests.support.supervised import wait_until


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def seed(boto_client: Any, **values: str) -> Any:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/handoff/secret_key_base", Value=KEY, Type="SecureString")
    for name, value in values.items():
        ssm.put_parameter(Name=f"/handoff/{name}", Value=value, Type="SecureString")
    return ssm


def held(app: ListeningRails) -> tuple[int, list[str]]:
    """The agent's sockets (count: their inodes change) and its other descriptors but pipes."""
    fds = app.fds()
    sockets = len([fd for fd in fds if fd.startswith("socket:")])
    return sockets, [fd for fd in fds if not fd.startswith(("socket:", "pipe:"))]


def test_handoff_under_load_serves_every_request(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """Two rotations of a SecureString under load: every request answers 200; after each
    handoff only the new secret's digest is served; the old puma is gone (reaped, no zombie)
    and the agent holds no more descriptors than before."""
    ssm = seed(boto_client, app_secret="first")
    app = ListeningRails(tmp_path, moto.url, {"PARAMETER_STORE_PREFIX": "/handoff"})
    load = None
    try:
        ready = app.wait_event("command ready")
        assert ready["rotation"] == "handoff"
        assert "Activated tcp://127.0.0.1:" in app.text()
        first_pid = ready["pid"]
        held_before = held(app)
        load = Load(app.port, "/served/APP_SECRET", clients=4, max_seconds=240)
        time.sleep(1)
        old_pid = first_pid
        for round_, value in enumerate(("second", "third"), start=1):
            ssm.put_parameter(
                Name="/handoff/app_secret", Value=value, Type="SecureString", Overwrite=True
            )
            handed = app.wait_event("command handed over", count=round_)
            assert handed["old_pid"] == old_pid and handed["changed"] == ["APP_SECRET"]
            new_pid = handed["pid"]
            app.wait_event("old command exited", count=round_)
            wait_gone(old_pid)
            after = time.monotonic()
            time.sleep(1.5)
            served = [a for a in list(load.answers) if a.started > after and a.status == 200]
            assert served, "no request served after the handoff"
            assert {(a.body["pid"], a.body["sha256"]) for a in served} == {(new_pid, sha(value))}
            assert app.children() == [new_pid]
            # Its sockets (the listener, the serving command's notify socket) and files: as
            # before the handoff. (A check process's pipes come and go: not counted.)
            assert held(app) == held_before, (held_before, held(app))
            old_pid = new_pid
        answers = load.stop()
        load = None
        stats = summary(answers)
        print("handoff under load:", stats)
        assert not failures(answers), failures(answers)[:5]
        digests = {a.body["sha256"] for a in answers}
        assert digests == {sha("first"), sha("second"), sha("third")}
        assert len(app.events("command started")) == 1  # the first start only
        pid = app.proc.pid
        code = app.stop()
        assert code in (0, 143), (code, app.tail())
        assert gone(old_pid) and not [p for p in (first_pid, old_pid) if not gone(p)]
        assert not Path(f"/proc/{pid}").exists() or code is not None
    finally:
        if load is not None:
            load.stop()
        app.stop()


def test_without_notify_stop_then_start_on_held_sockets_fails_no_request(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """A command that ignores NOTIFY_SOCKET (``env -u`` takes it away from puma): one log line
    says so at start, and a rotation stops it, then starts the new one on the sockets the agent
    holds. Connections wait in the backlog for one boot: no request fails."""
    ssm = seed(boto_client, app_secret="first")
    app = ListeningRails(
        tmp_path,
        moto.url,
        {"PARAMETER_STORE_PREFIX": "/handoff", "SECRETS_AGENT_READY_TIMEOUT": "3"},
        wrap=["env", "-u", "NOTIFY_SOCKET"],
    )
    load = None
    try:
        line = app.wait_event("no READY=1 from the command")
        assert line["rotation"] == "stop-then-start"
        first_pid = line["pid"]
        load = running = Load(app.port, "/served/APP_SECRET", clients=4, max_seconds=180)
        time.sleep(1)
        ssm.put_parameter(
            Name="/handoff/app_secret", Value="second", Type="SecureString", Overwrite=True
        )
        restarted = app.wait_event("command restarted")
        wait_until(
            lambda: any(a.body["pid"] == restarted["pid"] for a in list(running.answers) if a.body),
            timeout=120,
            what="an answer from the new command",
        )
        after = time.monotonic()
        time.sleep(1)
        answers = load.stop()
        load = None
        stats = summary(answers)
        print("stop-then-start on held sockets:", stats, "longest wait (ms):", stats["max_ms"])
        assert not failures(answers), failures(answers)[:5]
        assert {a.body["sha256"] for a in answers} == {sha("first"), sha("second")}
        assert {a.body["pid"] for a in answers if a.started > after} == {restarted["pid"]}
        assert gone(first_pid)
        assert not app.events("command handed over")
    finally:
        if load is not None:
            load.stop()
        app.stop()


def test_a_new_command_that_fails_leaves_the_old_one_serving(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """The new command crashes at boot, never gets ready, or binds another port: each time the
    old one serves on (every request 200, from the first process), a warning names the cause,
    the next check tries again, and at most two app processes run."""
    from tests.support.moto_server import free_port
    from tests.support.rails_app import CONFIG_RU, require_rails

    require_sd_notify()
    port, other = free_port(), free_port()
    ssm = seed(boto_client, app_secret="stable", test_boot="ok", app_port=str(port))
    script = 'exec "$0" -b "tcp://127.0.0.1:$APP_PORT" "$1"'
    app = ListeningRails(
        tmp_path,
        moto.url,
        {"PARAMETER_STORE_PREFIX": "/handoff", "SECRETS_AGENT_READY_TIMEOUT": "30"},
        command=["sh", "-c", script, require_rails(), str(CONFIG_RU)],
        port=port,
    )
    load = None
    most = 0
    try:
        first_pid = app.wait_event("command ready")["pid"]
        load = Load(app.port, "/served/APP_SECRET", clients=3, max_seconds=300)
        cases = [
            ("test_boot", "crash", "ok", "exited with status 1 before READY=1"),
            ("test_boot", "hang", "ok", "was not ready within 30 s"),
            ("app_port", str(other), str(port), f"does not serve on tcp://127.0.0.1:{port}"),
        ]
        for name, bad, good, cause in cases:
            seen = len(app.events("secrets change not applied"))
            ssm.put_parameter(
                Name=f"/handoff/{name}", Value=bad, Type="SecureString", Overwrite=True
            )
            # The cause, then a retry at a later check that fails the same way.
            for n in (1, 2):
                event = app.wait_event("secrets change not applied", count=seen + n, timeout=120)
                assert cause in event["error"], event
                assert event["pid"] == first_pid
                most = max(most, len(app.children()))
            ssm.put_parameter(
                Name=f"/handoff/{name}", Value=good, Type="SecureString", Overwrite=True
            )
            settle(app)
            assert app.children() == [first_pid]
        assert app.events("handoff retried")
        answers = load.stop()
        load = None
        print("failed handoffs under load:", summary(answers))
        assert not failures(answers), failures(answers)[:5]
        assert {a.body["pid"] for a in answers} == {first_pid}
        assert not app.events("command handed over")
        assert most <= 2
    finally:
        if load is not None:
            load.stop()
        app.stop()


def settle(app: ListeningRails) -> None:
    """Wait until no handoff is under way and none started for 3 s (the restored value is
    the running one: checks find nothing to do)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        started = len(app.events("handoff started"))
        ended = len(app.events("secrets change not applied"))
        time.sleep(3)
        if (
            len(app.events("handoff started")) == started
            and len(app.events("secrets change not applied")) == ended
            and len(app.children()) == 1
        ):
            return
    raise AssertionError(f"handoffs did not settle: {app.tail()}")


def rds_secret(pg: Any, password: str) -> str:
    """The JSON a Secrets Manager secret holds under RDS's managed rotation."""
    return json.dumps(
        {
            "username": "app",
            "password": password,
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": pg.port,
            "dbname": "app",
        }
    )


def rotate_database_password(pg: Any, sm: Any, password: str) -> None:
    """What a rotation does: the role's new password first, then the secret's new value."""
    pg.psql(f"ALTER ROLE app PASSWORD '{password}'")
    sm.put_secret_value(SecretId="handoff/database", SecretString=rds_secret(pg, password))


def test_database_password_rotation_with_postgresql(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """The rotation a Rails team cares about most, on Debian's PostgreSQL and ruby-pg: the app
    connects at boot with the password from a Secrets Manager secret of RDS's shape, every
    request runs a query. The rotation changes the role's password, then the secret: the new
    Rails connects with the new password and no request fails. The same rotation in restart
    mode (no SECRETS_AGENT_LISTEN) fails requests while Rails boots: counted and printed."""
    with postgres() as pg:
        pg.psql("CREATE ROLE app LOGIN PASSWORD 'first-pw'")
        pg.psql("CREATE DATABASE app OWNER app")
        seed(boto_client)
        sm = boto_client("secretsmanager")
        sm.create_secret(Name="handoff/database", SecretString=rds_secret(pg, "first-pw"))
        counts = {
            "handoff": database_rotation(
                tmp_path, moto, pg, sm, "handoff", "first-pw", "second-pw"
            ),
            "restart": database_rotation(
                tmp_path, moto, pg, sm, "restart", "second-pw", "third-pw"
            ),
        }
        print("database password rotation under load:", counts)
        assert counts["handoff"]["failed"] == 0, counts
        # What the handoff avoids: today's restart mode refuses connections while Rails boots.
        assert counts["restart"]["failed"] > 0, counts


def database_rotation(
    tmp_path: Path, moto: MotoServer, pg: Any, sm: Any, mode: str, before: str, after: str
) -> dict[str, float]:
    """Rails under load on /db, the password rotated once; the load's summary."""
    settings = {"PARAMETER_STORE_PREFIX": "/handoff", "SECRETS_MANAGER_PREFIX": "handoff"}
    app = ListeningRails(tmp_path, moto.url, settings, listen=mode == "handoff")
    load = None
    try:
        if mode == "handoff":
            first_pid = app.wait_event("command ready")["pid"]
        else:
            first_pid = app.wait_event("command started")["pid"]
            wait_until(lambda: answers_ok(app.port), timeout=90, what="rails up")
        load = Load(app.port, "/db", clients=4, max_seconds=180)
        running = load
        time.sleep(1)
        rotate_database_password(pg, sm, after)
        event = "command handed over" if mode == "handoff" else "command restarted"
        new_pid = app.wait_event(event)["pid"]
        wait_until(
            lambda: any(a.body.get("pid") == new_pid for a in ok_answers(running)),
            timeout=120,
            what="an answer from the new Rails",
        )
        if mode == "handoff":
            app.wait_event("old command exited")
        wait_gone(first_pid)
        switched = time.monotonic()
        time.sleep(1)
        answers = load.stop()
        load = None
    finally:
        if load is not None:
            load.stop()
        app.stop()
    served = ok_answers_of(answers)
    assert {a.body["who"] for a in served} == {"app"}
    assert {a.body["two"] for a in served} == {2}
    assert {a.body["sha256"] for a in served} <= {sha(before), sha(after)}
    late = {(a.body["pid"], a.body["sha256"]) for a in served if a.started > switched}
    assert late == {(new_pid, sha(after))}
    return summary(answers)


def answers_ok(port: int) -> bool:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/db")
        with conn.getresponse() as response:
            return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def ok_answers(load: Load) -> list[Any]:
    return ok_answers_of(list(load.answers))


def ok_answers_of(answers: list[Any]) -> list[Any]:
    return [a for a in answers if a.status == 200 and isinstance(a.body, dict)]


def test_a_bind_that_does_not_match_is_a_warning_at_start(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """puma bound to another address than SECRETS_AGENT_LISTEN closes the socket it was given:
    the agent says so once the command is ready, naming the address nobody serves."""
    from tests.support.moto_server import free_port
    from tests.support.rails_app import CONFIG_RU, require_rails

    require_sd_notify()
    seed(boto_client)
    listen, bound = free_port(), free_port()
    app = ListeningRails(
        tmp_path,
        moto.url,
        {"PARAMETER_STORE_PREFIX": "/handoff"},
        command=[require_rails(), "-b", f"tcp://127.0.0.1:{bound}", str(CONFIG_RU)],
        port=listen,
    )
    try:
        app.wait_event("command ready")
        warning = app.wait_event("the command does not serve on the agent's sockets")
        assert warning["addresses"] == [f"tcp://127.0.0.1:{listen}"]
        assert "Closing unused activated socket" in app.text()
    finally:
        app.stop()
