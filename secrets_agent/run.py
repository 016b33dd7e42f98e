"""The composition root: settings and the log, the plan, the AWS clients, the resolution; then
exec, supervise, or the records ``env`` and ``check`` print. ``secrets_agent.cli`` parses argv,
prints, and turns errors into exit codes; ``secrets_agent.supervise.check_process`` (supervise
mode's check process) calls :func:`resolve` and :func:`make_clients` too.

Heavy imports (botocore, the Encryption SDK) happen only on paths that need them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType
from typing import IO, TYPE_CHECKING, cast

from secrets_agent.core.errors import AgentError, UsageError

if TYPE_CHECKING:
    from secrets_agent.aws.clients import Clients
    from secrets_agent.core.model import Record
    from secrets_agent.core.plan import Plan
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger
    from secrets_agent.output.metrics import Emf
    from secrets_agent.process.secret_files import Target
    from secrets_agent.resolve.pipeline import Resolution

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class Stopped(Exception):
    """A stop signal arrived while the secrets were being resolved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def make_clients(environ: Mapping[str, str], settings: Settings, log: Logger) -> Clients:
    """The AWS clients (botocore loads here): the one place they are built."""
    from secrets_agent.aws.clients import Clients

    return Clients(environ=environ, timeout=settings.timeout, log=log)


def setup(
    environ: Mapping[str, str], *, queued_since: float | None = None
) -> tuple[Settings, Logger]:
    from secrets_agent.core.settings import load_settings
    from secrets_agent.output.logs import Logger

    settings = load_settings(environ)
    fmt = settings.log_format
    if settings.metrics != "off":
        from secrets_agent.output.metrics import check_settings

        check_settings(settings)
        fmt = "json"  # the embedded metric format is JSON, on a terminal too
    stream: IO[str] | None = None
    if (settings.supervise or queued_since is not None) and sys.stderr is not None:
        from secrets_agent.output import logsink

        # The supervisor outlives a stalled log driver, and exec mode starts the command all
        # the same (its lines wait for room until the timeout, then are dropped): their lines
        # never block them. (The logger uses write, flush and isatty only.)
        until = None
        if not settings.supervise and queued_since is not None:
            until = queued_since + settings.timeout
        stream = cast("IO[str]", logsink.install(2, block_until=until))
    return settings, Logger(level=settings.log_level, fmt=fmt, stream=stream)


def file_targets(settings: Settings) -> tuple[Target, ...]:
    """SECRETS_AGENT_FILES' paths, checked before any AWS call (78 when one is refused)."""
    if not settings.files:
        return ()
    from secrets_agent.process.secret_files import targets_here

    return targets_here(settings.files)


def _make_plan(
    environ: Mapping[str, str], settings: Settings, log: Logger, emf: Emf | None, started: float
) -> Plan:
    """The plan; with nothing to resolve, the required variables checked (66 when missing)."""
    import time

    from secrets_agent.core.plan import check_required, make_plan

    try:
        plan = make_plan(settings, environ)
    except AgentError as error:
        if emf is not None:
            emf.failed(log, error, clients=None, seconds=time.monotonic() - started)
        raise
    if plan.empty:
        check_required(environ, settings, plan.refs)
        log.debug("nothing to resolve")
    return plan


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """A stop signal raises ``Stopped`` (the resolution ends at once) while this lasts."""
    previous = {s: signal.signal(s, _on_stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resolve(
    environ: Mapping[str, str], settings: Settings, log: Logger, *, emf: Emf | None = None
) -> tuple[Plan, Resolution | None, Clients | None]:
    """Resolve everything, bounded by SECRETS_AGENT_TIMEOUT; a stop signal ends it at once.

    With ``emf``, the summary line carries the resolution's metrics, and a failure writes one
    metric line (``ResolutionFailures``) before the error line.
    """
    import time

    started = time.monotonic()
    plan = _make_plan(environ, settings, log, emf, started)
    if plan.empty:
        return plan, None, None
    from dataclasses import replace

    from secrets_agent.aws.bounded import run_bounded
    from secrets_agent.aws.sources import AwsSources, decrypter
    from secrets_agent.output.metrics import log_resolution
    from secrets_agent.resolve.pipeline import resolve as resolve_plan

    clients = make_clients(environ, settings, log)
    # The sources and the decrypt function the pipeline is given: built here, with the clients.
    sources = AwsSources(clients, log)
    decrypt = decrypter(clients, log, key_arns=settings.kms_key_arns, timeout=settings.timeout)
    try:
        with _stoppable():
            result: Resolution = run_bounded(
                lambda: replace(
                    resolve_plan(
                        plan, settings=settings, environ=environ, sources=sources, decrypt=decrypt
                    ),
                    calls=clients.calls,
                    retries=clients.retries,
                ),
                timeout=settings.timeout,
                what="resolving secrets",
                clients=clients,
            )
    except AgentError as error:
        if emf is not None:
            emf.failed(log, error, clients=clients, seconds=time.monotonic() - started)
        raise
    log_resolution(result, log=log, emf=emf)
    return plan, result, clients


def _check_listen(settings: Settings) -> None:
    """SECRETS_AGENT_LISTEN outside restart or exit supervise mode is 78."""
    if settings.listen and (not settings.supervise or settings.on_change == "redeploy"):
        from secrets_agent.core.errors import ConfigError

        raise ConfigError(
            "SECRETS_AGENT_LISTEN is for supervise mode with SECRETS_AGENT_ON_CHANGE=restart "
            "or exit (the agent holds the sockets across restarts)",
            hint="set SECRETS_AGENT_WATCH_INTERVAL, or unset SECRETS_AGENT_LISTEN",
        )


def exec_mode(command: list[str]) -> int:
    if not command:
        raise UsageError("no command given", hint="usage: secrets-agent exec -- CMD [ARG...]")
    import time

    started = time.monotonic()
    environ = dict(os.environ)
    settings, log = setup(environ, queued_since=started)
    if settings.supervise:
        from secrets_agent.process.spawn import set_undumpable

        set_undumpable()  # the supervisor holds every secret as long as the task runs
    files = file_targets(settings)
    emf = None
    if settings.metrics != "off":
        from secrets_agent.output.metrics import from_settings

        emf = from_settings(settings, environ, log=log)
    _check_listen(settings)
    if settings.supervise:
        from secrets_agent.supervise.mode import supervise_isolated

        plan = _make_plan(environ, settings, log, emf, time.monotonic())
        return supervise_isolated(
            command, environ, settings, log, files, emf, plan=plan, stoppable=_stoppable
        )
    _, result, _ = resolve(environ, settings, log, emf=emf)
    env = result.env if result is not None else environ
    prepare = None
    if files:
        from secrets_agent.process.secret_files import preparer, split_env

        split_env(env, files)  # 66 before anything starts
        prepare = preparer(files, log=log)
    from secrets_agent.process.execute import exec_command

    if prepare is not None:
        env = prepare(env)  # the files are written; their variables leave the environment

    log.debug("exec", command=command[0])
    from secrets_agent.output import logsink

    # The queued lines go out before execve, but a stderr nobody reads holds the start no
    # longer than SECRETS_AGENT_TIMEOUT from the agent's start (the lines left are lost).
    logsink.drain_active(max(0.0, started + settings.timeout - time.monotonic()))
    exec_command(command, env)


def check_configured(environ: Mapping[str, str], settings: Settings, command: str) -> None:
    """``env`` and ``check`` with nothing configured are 78, as ``iam-policy`` is: run where
    the task's variables are missing, they would otherwise print nothing and exit 0."""
    from secrets_agent.core.errors import ConfigError
    from secrets_agent.process.fastpath import looks_like_reference

    if (
        settings.parameter_store_prefix
        or settings.secrets_manager_prefix
        or settings.require
        or any(looks_like_reference(value) for value in environ.values())
    ):
        return
    raise ConfigError(
        f"nothing to {command}: no PARAMETER_STORE_PREFIX, SECRETS_MANAGER_PREFIX, reference "
        "or SECRETS_AGENT_REQUIRE is set",
        hint=f"run {command} with the task's environment (PARAMETER_STORE_PREFIX=/myapp/prod, "
        "SECRETS_AGENT_REQUIRE=SECRET_KEY_BASE, ...)",
    )


def env_text(*, fmt: str, reveal: bool) -> str:
    """``env``'s output."""
    from secrets_agent.output.render import render_env

    environ = dict(os.environ)
    settings, log = setup(environ)
    check_configured(environ, settings, "print")
    files = file_targets(settings)
    _, result, _ = resolve(environ, settings, log)
    records = result.applied if result is not None else ()
    if files:
        from secrets_agent.process.secret_files import split_env, without_files

        split_env(result.env if result is not None else environ, files)
        records = without_files(records, files)
    return render_env(records, fmt=fmt, reveal=reveal)


def check_text(fmt: str) -> str:
    """``check``'s output (text or JSON); logs its cost."""
    from secrets_agent.output.render import render_check_report

    environ = dict(os.environ)
    settings, log = setup(environ)
    check_configured(environ, settings, "check")
    files = file_targets(settings)
    plan, result, clients = resolve(environ, settings, log)
    records: Sequence[Record] = (*result.applied, *result.kept) if result is not None else ()
    if result is not None and clients is not None:
        from secrets_agent.supervise.check_cost import check_cost, log_check_cost

        calls = check_cost(
            dict(clients.by_operation),
            plan=plan,
            fingerprint=result.fingerprint,
            settings=settings,
        )
        log_check_cost(calls, settings=settings, log=log)
    if files:
        from secrets_agent.process.secret_files import check_records

        records = check_records(records, result.env if result is not None else environ, files)
    if settings.listen:
        log.info(
            "listen: a rotation hands over to the new command when it sends READY=1 on "
            "NOTIFY_SOCKET (puma 6; puma 5 with the sd_notify gem), else stops the running "
            "command and starts the new one on the held sockets",
            addresses=list(settings.listen),
            ready_timeout=settings.ready_timeout,
        )
    paths = {t.name: t.path for t in files}
    return render_check_report(records, environ=environ, settings=settings, files=paths, fmt=fmt)
