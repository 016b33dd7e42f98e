"""SECRETS_AGENT_LISTEN end to end: the test Rails app under Debian's puma 5 (with the
``sd_notify`` gem, Debian's ruby-sd-notify), supervised by the real entrypoint against moto,
while a load generator on 127.0.0.1 sends requests. A rotation must not fail one request.

Bounded by counts and time; asserted on behaviour (every answer 200, which process served with
which secret, processes and descriptors left), never on latency.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from tests.handoff_support import KEY, ListeningRails, gone, wait_gone
from tests.load_client import Load, failures, summary
from tests.moto_server import MotoServer


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def seed(boto_client: Any, **values: str) -> Any:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="/handoff/secret_key_base", Value=KEY, Type="SecureString")
    for name, value in values.items():
        ssm.put_parameter(Name=f"/handoff/{name}", Value=value, Type="SecureString")
    return ssm


def notify_sockets(app: ListeningRails) -> int:
    return len([fd for fd in app.fds() if fd.startswith("socket:")])


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
        fds_before = app.fds()
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
            assert app.fds() == fds_before or len(app.fds()) == len(fds_before), (
                fds_before,
                app.fds(),
            )
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
