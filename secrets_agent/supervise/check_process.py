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
    from secrets_agent.aws.clients import Clients
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger
    from secrets_agent.supervise.watch import ResolveWatcher


def main() -> None:
    """The check process: one request on stdin, one answer on stdout, logs on stderr."""
    from secrets_agent.process.spawn import set_undumpable

    set_undumpable()  # before the request, which holds the environment, is read

    from secrets_agent.output.logs import Logger
    from secrets_agent.supervise.messages import decode_request, encode_answer

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

    settings: Settings = request["settings"]
    environ: dict[str, str] = request["environ"]
    _, result, clients = resolve(environ, settings, log, emf=request["emf"])
    if result is None or clients is None:
        return {"env": None, "fingerprint": {}}
    answer: dict[str, Any] = {"env": result.env, "fingerprint": result.fingerprint}
    if settings.on_change == "redeploy":
        from secrets_agent.supervise.redeploy import find_at_start, stretch

        service, state = find_at_start(settings=settings, environ=environ, clients=clients, log=log)
        answer["redeploy"] = {
            "service": [
                service.cluster,
                service.name,
                service.region,
                service.task_arn,
                service.found_by,
            ],
            "stretch": stretch(state.running),
        }
    return answer


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
    if request["redeploy"] is not None:
        return _redeploy_check(request, watcher, clients, log)
    change = watcher.poll()
    if change is None or change.env is None:
        return {"env": None}
    watcher.commit()
    return {
        "env": dict(change.env),
        "fingerprint": watcher.fingerprint,
        "changes": list(change.changes),
    }


def _redeploy_check(
    request: dict[str, Any], watcher: ResolveWatcher, clients: Clients, log: Logger
) -> dict[str, Any]:
    """Redeploy mode's check: a change becomes one ``UpdateService`` here, and the answer
    carries no environment (nothing restarts), the fingerprint acted on, and the pacing."""
    from secrets_agent.aws.ecs_service import Service, ServiceState
    from secrets_agent.supervise.redeploy import RedeployWatcher

    state = request["redeploy"]
    service = Service(*state["service"])
    redeploy = RedeployWatcher(
        watcher,
        service=service,
        # Read again before anything is decided: only the arn of the last look is kept here.
        state=ServiceState(arn="", running=1, deployments=()),
        clients=clients,
        log=log,
        timeout=request["settings"].timeout,
        env=dict.fromkeys(state["names"], ""),
        resolved_at=state["resolved_at"],
    )
    change = redeploy.poll()
    answer: dict[str, Any] = {"env": None, "redeploy": {"stretch": change.stretch or 1}}
    if watcher.fingerprint != request["fingerprint"]:  # acted on: seen
        answer["fingerprint"] = watcher.fingerprint
        answer["changes"] = list(change.changes)
    return answer
