"""The check process of supervise mode (``secrets_agent.supervise.isolated`` starts it): one
request on stdin,
one answer on stdout, log lines on stderr. It imports the AWS SDK, resolves or checks once, and
exits; the supervisor never imports what it does."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from secrets_agent.core.errors import AgentError

if TYPE_CHECKING:
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger


def main() -> None:
    """The check process: one request on stdin, one answer on stdout, logs on stderr."""
    from secrets_agent.process.spawn import set_undumpable

    set_undumpable()  # before the request, which holds the environment, is read

    from secrets_agent.output.logs import Logger
    from secrets_agent.supervise.isolated import decode_request, encode_answer

    request = decode_request(sys.stdin.buffer.read())
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing else may write into the answer
    log = Logger(level=request["level"], fmt=request["fmt"])
    answer: dict[str, Any]
    try:
        if request["kind"] == "start":
            answer = _child_start(request, log)
        else:
            answer = _child_check(request, log)
    except AgentError as exc:
        answer = {"error": (exc.exit_code, exc.line(), exc.kind, exc.event())}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as a bug (70)
        answer = {"error": (70, f"secrets-agent: internal error: unexpected {type(exc).__name__}")}
    try:
        sys.stderr.flush()
        out.write(encode_answer(answer))
        out.flush()
    finally:
        os._exit(0)  # a check thread still waiting on AWS must not hold the answer back


def _child_start(request: dict[str, Any], log: Logger) -> dict[str, Any]:
    from secrets_agent.run import resolve

    _, result, _ = resolve(request["environ"], request["settings"], log, emf=request["emf"])
    if result is None:
        return {"env": None, "fingerprint": {}}
    return {"env": result.env, "fingerprint": result.fingerprint}


def _child_check(request: dict[str, Any], log: Logger) -> dict[str, Any]:
    from secrets_agent.core.plan import make_plan
    from secrets_agent.run import make_clients
    from secrets_agent.supervise.watch import ResolveWatcher

    settings: Settings = request["settings"]
    environ: dict[str, str] = request["environ"]
    plan = make_plan(settings, environ)
    clients = make_clients(environ, settings, log)
    watcher = ResolveWatcher(
        plan,
        settings=settings,
        environ=environ,
        clients=clients,
        log=log,
        fingerprint=request["fingerprint"],
    )
    change = watcher.poll()
    if change is None or change.env is None:
        return {"env": None}
    watcher.commit()
    return {
        "env": dict(change.env),
        "fingerprint": watcher.fingerprint,
        "changes": list(change.changes),
    }
