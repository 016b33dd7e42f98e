"""Command line: argv -> subcommand. The composition root, and the one place where errors
become exit codes and one stderr line.

Heavy imports (botocore, the Encryption SDK) happen only on paths that need
them: with no prefix, no reference and no agent setting, ``exec`` replaces itself at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from secrets_agent import __version__
from secrets_agent.core.errors import AgentError, DataError, OutputError, UsageError
from secrets_agent.core.printable import MAX_LINE, capped, printable
from secrets_agent.process.fastpath import (
    exec_if_nothing_to_do,
    needs_agent,
    strip_separator,
    undo_locale_coercion,
)

if TYPE_CHECKING:
    import argparse

    from secrets_agent.aws.clients import Clients
    from secrets_agent.core.model import Record
    from secrets_agent.core.plan import Plan
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger
    from secrets_agent.output.metrics import Emf
    from secrets_agent.process.secret_files import Target
    from secrets_agent.resolve.pipeline import Resolution

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class _Interrupted(AgentError):
    """Stopped by a signal before anything was done: 128+N, and a line without a hint."""

    kind = "stopped"
    slug = "stopped"

    def __init__(self, signum: int, text: str) -> None:
        super().__init__(text)
        self.exit_code = 128 + signum

    def line(self, *, version: bool = False) -> str:
        suffix = f" (secrets-agent {__version__})" if version else ""
        return capped(printable(f"secrets-agent: {self.message}"), MAX_LINE - len(suffix)) + suffix


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _fail(error: AgentError) -> int:
    from secrets_agent.output import logs

    logs.close()
    if _json_mode():
        _stderr(logs.Logger(fmt="json").line("error", error.kind, **error.event(),
        version=__version__))
    else:
        _stderr(error.line(version=True))
    return error.exit_code


def _json_mode() -> bool:
    """Whether the error is reported as a JSON event: the format of the agent's log lines, or,
    before they have one (a setting refused), what SECRETS_AGENT_LOG_FORMAT or stderr says."""
    from secrets_agent.output import logs

    fmt = logs.current_format()
    if fmt is None:
        chosen = os.environ.get("SECRETS_AGENT_LOG_FORMAT", "").strip().lower()
        if chosen in ("json", "text"):
            return chosen == "json"
        isatty = getattr(sys.stderr, "isatty", None)
        try:
            return not (isatty is not None and isatty())
        except (OSError, ValueError):
            return True
    return fmt == "json"


def _stderr(line: str) -> None:
    if sys.stderr is None:  # started with stderr closed
        return
    sink = getattr(sys.modules.get("secrets_agent.output.logsink"), "_active", None)
    if sink is not None:  # after the queued log lines, and never blocking
        sink.write(capped(printable(line)) + "\n")
        return
    try:
        sys.stderr.write(capped(printable(line)) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _stdout(text: str) -> None:
    """Write a subcommand's result, and flush it: a write that fails is 74, not a bug.

    The text goes out as the bytes the environment holds (``os.fsencode``: UTF-8, and a value
    that came from non-UTF-8 bytes as those bytes again), whatever stdout's own encoding and
    error handler are: ``env --reveal`` prints what the command would receive.
    """
    data = os.fsencode(text)
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    try:
        if buffer is None:  # a text-only stream (embedding): its own encoding
            stream.write(text)
            stream.flush()
        else:
            stream.flush()
            buffer.write(data)
            buffer.flush()
    except (OSError, ValueError) as exc:
        import errno

        code = getattr(exc, "errno", None)
        why = (
            f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
            if isinstance(code, int)
            else "it is closed"
        )
        full = code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        raise OutputError(
            f"cannot write the result to stdout ({why})",
            hint="free space where stdout goes, or redirect it elsewhere"
            if full
            else "check where stdout goes (a reader that went away, a device that fails)",
        ) from None


def entrypoint_exec(command: Sequence[str]) -> NoReturn:
    """``docker-entrypoint.py CMD...``: the fast path first, else ``exec -- CMD...``."""
    command = strip_separator(command)
    exec_if_nothing_to_do(command)  # returns when there is work, or when the exec failed
    if command and not needs_agent(os.environ):
        from secrets_agent.process.execute import exec_command

        try:
            exec_command(command, os.environ)  # fails again, the same way: report it
        except AgentError as error:
            _exit(_fail(error))
    _exit(main(["exec", "--", *command]))


def entrypoint() -> NoReturn:
    """``secrets-agent ...`` and ``python -m secrets_agent ...``."""
    _exit(main(sys.argv[1:]))


def _exit(code: int) -> NoReturn:
    # os._exit: a resolution thread stuck on a hanging endpoint must not delay the exit, nor a
    # log writer stuck on a stderr that nobody reads (after a short grace to drain its queue).
    from secrets_agent.process.execute import flush_std_streams

    try:
        logsink = sys.modules.get("secrets_agent.output.logsink")
        if logsink is not None:
            logsink.drain_active()
        flush_std_streams()
    finally:
        os._exit(code)


def _parser() -> argparse.ArgumentParser:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            # One line, as for every other failure (argparse prints the usage, then the error).
            line = f"secrets-agent: usage: {message}; run {self.prog} --help"
            self.exit(64, capped(printable(line)) + "\n")

    parser = Parser(
        prog="secrets-agent",
        description="Resolve AWS secrets into the environment, then exec or supervise a command.",
    )
    parser.add_argument("--version", action="version", version=f"secrets-agent {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    p_exec = sub.add_parser("exec", help="resolve secrets, then exec (or supervise) the command")
    p_exec.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    p_env = sub.add_parser("env", help="print what the agent would add or replace")
    p_env.add_argument("--format", choices=("dotenv", "json", "shell"), default="dotenv")
    p_env.add_argument("--reveal", action="store_true", help="print values instead of ***")
    p_check = sub.add_parser(
        "check", help="resolve everything; print name, source, source name, version"
    )
    p_check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one document for CI (no values); the exit code is a real start's",
    )
    p_iam = sub.add_parser("iam-policy", help="print the least-privilege IAM policy")
    p_iam.add_argument("--format", choices=("json", "terraform"), default="json")
    p_iam.add_argument("--account-id", help="AWS account id for the ARNs")
    p_iam.add_argument(
        "--kms-key-arn",
        action="append",
        default=[],
        help="customer-managed KMS key of SecureStrings or secrets (repeatable)",
    )
    p_iam.add_argument(
        "--ecs-cluster", help="redeploy mode: the cluster of the service (when the task finds it)"
    )
    p_iam.add_argument(
        "--ecs-service", help="redeploy mode: the service the task may redeploy (likewise)"
    )
    p_enc = sub.add_parser(
        "encrypt",
        help="encrypt stdin into an aesdk: value for variable VAR (run it on a workstation "
        "or in CI, with kms:GenerateDataKey on the key)",
        description="Encrypt the plaintext on stdin into an aesdk: value bound to variable VAR. "
        "Run it where you may call kms:GenerateDataKey on the key (a workstation or CI), not in "
        "the task: the task role needs only kms:Decrypt. The region is the key ARN's, else "
        "AWS_REGION or AWS_DEFAULT_REGION.",
    )
    p_enc.add_argument(
        "--key-id",
        required=True,
        help="the KMS key to encrypt under: a key ARN, a key id, an alias (alias/NAME) or an "
        "alias ARN",
    )
    p_enc.add_argument("--name", required=True, help="the variable the value is bound to")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one subcommand; return the exit code."""
    undo_locale_coercion()  # the command gets the environment the agent was given, plus secrets
    parser: argparse.ArgumentParser | None = None
    if list(argv[:2]) == ["exec", "--"]:
        # The entrypoint's own form needs no argparse (5 ms of imports before the command).
        from types import SimpleNamespace

        args: Any = SimpleNamespace(subcommand="exec", command=list(argv[1:]))
    else:
        parser = _parser()
        try:
            args = parser.parse_args(list(argv))
        except SystemExit as exc:
            return 64 if exc.code not in (0, None) else 0
    try:
        if args.subcommand not in (None, "exec") and sys.stdout is None:
            raise UsageError("stdout is closed", hint=f"{args.subcommand} prints its result there")
        if args.subcommand == "encrypt" and sys.stdin is None:
            raise UsageError("stdin is closed", hint="pipe the plaintext to encrypt on stdin")
        if args.subcommand == "exec":
            return _cmd_exec(strip_separator(args.command))
        if args.subcommand == "env":
            return _cmd_env(fmt=args.format, reveal=args.reveal)
        if args.subcommand == "check":
            return _cmd_check(fmt=args.format)
        if args.subcommand == "iam-policy":
            return _cmd_iam(args)
        if args.subcommand == "encrypt":
            return _cmd_encrypt(key_id=args.key_id, name=args.name)
        raise UsageError("no subcommand given", hint="run secrets-agent --help")
    except AgentError as error:
        return _fail(error)
    except _Stopped as stop:
        return _fail(
            _Interrupted(stop.signum, f"stopped by signal {stop.signum} before the command started")
        )
    except KeyboardInterrupt:
        # SIGINT outside the resolution (whose handler raises _Stopped): at start-up, or while
        # encrypt reads its plaintext.
        sigint = signal.SIGINT.value
        return _fail(_Interrupted(sigint, f"interrupted by signal {sigint}; nothing was done"))
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        # A bug. Its message could quote data (a value), so name only its type and where it was
        # raised; the command was not started.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = (
            f" at {os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}"
            if frame is not None
            else ""
        )
        return _fail(
            AgentError(
                f"{type(exc).__name__}{where}",
                hint="the command was not started; please report this line",
            )
        )


def _setup(
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


def _file_targets(settings: Settings) -> tuple[Target, ...]:
    """SECRETS_AGENT_FILES' paths, checked before any AWS call (78 when one is refused)."""
    if not settings.files:
        return ()
    from secrets_agent.process.secret_files import targets_here

    return targets_here(settings.files)


def _on_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _resolve(
    environ: Mapping[str, str], settings: Settings, log: Logger, *, emf: Emf | None = None
) -> tuple[Plan, Resolution | None, Clients | None]:
    """Resolve everything, bounded by SECRETS_AGENT_TIMEOUT; a stop signal ends it at once.

    With ``emf``, the summary line carries the resolution's metrics, and a failure writes one
    metric line (``ResolutionFailures``) before the error line.
    """
    import time

    from secrets_agent.core.plan import make_plan

    started = time.monotonic()
    try:
        plan = make_plan(settings, environ)
    except AgentError as error:
        if emf is not None:
            emf.failed(log, error, clients=None, seconds=time.monotonic() - started)
        raise
    if plan.empty:
        from secrets_agent.core.plan import check_required

        check_required(environ, settings, plan.refs)
        log.debug("nothing to resolve")
        return plan, None, None
    from dataclasses import replace

    from secrets_agent.aws.bounded import run_bounded
    from secrets_agent.aws.clients import Clients
    from secrets_agent.aws.sources import AwsSources, decrypter
    from secrets_agent.output.metrics import log_resolution
    from secrets_agent.resolve.pipeline import resolve

    clients = Clients(environ=environ, timeout=settings.timeout, log=log)
    sources = AwsSources(clients, log)
    decrypt = decrypter(clients, log, key_arns=settings.kms_key_arns, timeout=settings.timeout)
    previous = {s: signal.signal(s, _on_stop) for s in _STOP_SIGNALS}
    try:
        result: Resolution = run_bounded(
            lambda: replace(
                resolve(plan, settings=settings, environ=environ, sources=sources, decrypt=decrypt),
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
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log_resolution(result, log=log, emf=emf)
    return plan, result, clients


def _cmd_exec(command: list[str]) -> int:
    if not command:
        raise UsageError("no command given", hint="usage: secrets-agent exec -- CMD [ARG...]")
    import time

    started = time.monotonic()
    environ = dict(os.environ)
    settings, log = _setup(environ, queued_since=started)
    if settings.supervise:
        from secrets_agent.process.spawn import set_undumpable

        set_undumpable()  # the supervisor holds every secret as long as the task runs
    files = _file_targets(settings)
    emf = None
    if settings.metrics != "off":
        from secrets_agent.output.metrics import from_settings

        emf = from_settings(settings, environ, log=log)
    if settings.listen and (not settings.supervise or settings.on_change == "redeploy"):
        from secrets_agent.core.errors import ConfigError

        raise ConfigError(
            "SECRETS_AGENT_LISTEN is for supervise mode with SECRETS_AGENT_ON_CHANGE=restart "
            "or exit (the agent holds the sockets across restarts)",
            hint="set SECRETS_AGENT_WATCH_INTERVAL, or unset SECRETS_AGENT_LISTEN",
        )
    if settings.supervise and settings.on_change != "redeploy":
        return _supervise_isolated(command, environ, settings, log, files, emf)
    plan, result, clients = _resolve(environ, settings, log, emf=emf)
    env = result.env if result is not None else environ
    prepare = None
    if files:
        from secrets_agent.process.secret_files import preparer, split_env

        split_env(env, files)  # 66 before anything starts
        prepare = preparer(files, log=log)
    if settings.supervise:
        from secrets_agent.supervise.supervisor import Watcher
        from secrets_agent.supervise.watch import ResolveWatcher

        watcher: Watcher | None = None
        if result is not None and clients is not None:
            resolve_watcher = ResolveWatcher(
                plan,
                settings=settings,
                environ=environ,
                clients=clients,
                log=log,
                fingerprint=result.fingerprint,
            )
            watcher = resolve_watcher
            if settings.on_change == "redeploy":
                from secrets_agent.supervise.redeploy import start_redeploy

                watcher = start_redeploy(
                    resolve_watcher,
                    settings=settings,
                    environ=environ,
                    env=env,
                    clients=clients,
                    log=log,
                )
            elif files:
                # Redeploy mode never rewrites files (nothing restarts): only restart and exit.
                from secrets_agent.process.secret_files import FilesWatcher

                watcher = FilesWatcher(resolve_watcher, files)
        return _supervise(command, env, settings, environ, watcher, log, prepare=prepare, emf=emf)
    from secrets_agent.process.execute import exec_command

    if prepare is not None:
        env = prepare(env)  # the files are written; their variables leave the environment

    log.debug("exec", command=command[0])
    from secrets_agent.output import logsink

    # The queued lines go out before execve, but a stderr nobody reads holds the start no
    # longer than SECRETS_AGENT_TIMEOUT from the agent's start (the lines left are lost).
    logsink.drain_active(max(0.0, started + settings.timeout - time.monotonic()))
    exec_command(command, env)


def _supervise_isolated(
    command: list[str],
    environ: dict[str, str],
    settings: Settings,
    log: Logger,
    files: tuple[Target, ...],
    emf: Emf | None,
) -> int:
    """Supervise mode (restart, exit): the AWS SDK never loads in this process; the first
    resolution and every check run in a process of their own
    (``secrets_agent.supervise.isolated``)."""
    import time

    from secrets_agent.core.plan import make_plan
    from secrets_agent.supervise.isolated import IsolatedWatcher, run_child
    from secrets_agent.supervise.supervisor import Watcher

    started = time.monotonic()
    try:
        plan = make_plan(settings, environ)
    except AgentError as error:
        if emf is not None:
            emf.failed(log, error, clients=None, seconds=time.monotonic() - started)
        raise
    env: dict[str, str] = environ
    watcher: Watcher | None = None
    if plan.empty:
        from secrets_agent.core.plan import check_required

        check_required(environ, settings, plan.refs)
        log.debug("nothing to resolve")
    else:
        previous = {s: signal.signal(s, _on_stop) for s in _STOP_SIGNALS}
        try:
            answer = run_child(
                "start",
                settings=settings,
                environ=environ,
                log=log,
                emf=emf,
                what="resolving secrets",
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        env = answer["env"] if answer["env"] is not None else environ
        watcher = IsolatedWatcher(
            settings=settings, environ=environ, log=log, fingerprint=answer["fingerprint"]
        )
    prepare = None
    if files:
        from secrets_agent.process.secret_files import FilesWatcher, preparer, split_env

        split_env(env, files)  # 66 before anything starts
        prepare = preparer(files, log=log)
        if watcher is not None:
            watcher = FilesWatcher(watcher, files)
    return _supervise(command, env, settings, environ, watcher, log, prepare=prepare, emf=emf)


def _supervise(
    command: list[str],
    env: Mapping[str, str],
    settings: Settings,
    environ: Mapping[str, str],
    watcher: Any,
    log: Logger,
    *,
    prepare: Any,
    emf: Emf | None,
) -> int:
    """Supervise ``command`` with the settings' interval, stop timeout and restart spread."""
    from secrets_agent.supervise.supervisor import supervise

    run: Callable[..., int] = supervise
    if settings.listen:
        from secrets_agent.supervise.handoff import listening

        run = listening(settings)
    return run(
        command,
        env,
        interval=settings.watch_interval,
        # Redeploy mode's watcher never hands back an environment: nothing restarts.
        on_change="exit" if settings.on_change == "exit" else "restart",
        stop_timeout=settings.stop_timeout,
        watcher=watcher,
        log=log,
        prepare=prepare,
        emf=emf,
        restart_delay=_restart_delay(settings, environ, log) if watcher is not None else 0.0,
    )


def _restart_delay(settings: Settings, environ: Mapping[str, str], log: Logger) -> float:
    if settings.on_change != "restart" or settings.restart_spread <= 0:
        return 0.0
    from secrets_agent.supervise.stagger import restart_delay

    return restart_delay(
        environ, spread=settings.restart_spread, timeout=settings.timeout, log=log
    )


def _check_configured(environ: Mapping[str, str], settings: Settings, command: str) -> None:
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


def _cmd_env(*, fmt: str, reveal: bool) -> int:
    from secrets_agent.output.render import render_env

    environ = dict(os.environ)
    settings, log = _setup(environ)
    _check_configured(environ, settings, "print")
    files = _file_targets(settings)
    _, result, _ = _resolve(environ, settings, log)
    records = result.applied if result is not None else ()
    if files:
        from secrets_agent.process.secret_files import split_env, without_files

        split_env(result.env if result is not None else environ, files)
        records = without_files(records, files)
    _stdout(render_env(records, fmt=fmt, reveal=reveal))
    return 0


def _cmd_check(*, fmt: str = "text") -> int:
    if fmt != "json":
        return _check(fmt)
    # For CI: a document on stdout whatever happens, and the exit code a real start would have.
    from secrets_agent.output.render import render_check_failure

    try:
        return _check(fmt)
    except AgentError as error:
        if not isinstance(error, OutputError):
            _stdout(render_check_failure(error.exit_code, printable(error.line())))
        raise


def _check(fmt: str) -> int:
    from secrets_agent.output.render import render_check, render_check_json

    environ = dict(os.environ)
    settings, log = _setup(environ)
    _check_configured(environ, settings, "check")
    files = _file_targets(settings)
    plan, result, clients = _resolve(environ, settings, log)
    from secrets_agent.core.layers import layered

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
    shown = {r.name for r in records}
    # A required variable that the inherited environment provides gets a row too.
    from secrets_agent.core.model import Record, Secret

    records = (
        *records,
        *(
            Record(name=name, value=Secret(environ[name]), source="environment", source_name=name)
            for name in settings.require
            if name not in shown
        ),
    )
    paths = {t.name: t.path for t in files}
    if fmt == "json":
        from secrets_agent.core.layers import split_prefixes

        prefixes = {
            "PARAMETER_STORE_PREFIX": split_prefixes(settings.parameter_store_prefix),
            "SECRETS_MANAGER_PREFIX": split_prefixes(settings.secrets_manager_prefix),
        }
        _stdout(
            render_check_json(records, files=paths, required=settings.require, prefixes=prefixes)
        )
        return 0
    layers = layered(settings.parameter_store_prefix, settings.secrets_manager_prefix)
    _stdout(render_check(records, files=paths, layers=layers, required=settings.require))
    return 0


def _cmd_iam(args: Any) -> int:
    from secrets_agent.policy import needs as iam

    _stdout(
        iam.render_for_environment(
            os.environ,
            fmt=args.format,
            account_id=args.account_id,
            kms_key_arns=tuple(args.kms_key_arn),
            ecs_cluster=args.ecs_cluster,
            ecs_service=args.ecs_service,
        )
    )
    return 0


def _cmd_encrypt(*, key_id: str, name: str) -> int:
    from secrets_agent.aws import envelope
    from secrets_agent.aws.clients import Clients
    from secrets_agent.core.aws_names import kms_region
    from secrets_agent.core.naming import check_settable

    check_settable(name, origin="--name")
    environ = dict(os.environ)
    settings, log = _setup(environ)
    clients = Clients(environ=environ, timeout=settings.timeout, log=log)
    # A key ARN names its region; a key id or an alias is looked up in the configured one
    # (78 when there is none, before anything is read).
    region = kms_region(key_id) or clients.default_region()
    if sys.stdin.isatty():
        import getpass

        # Typed at a terminal: read without echo, so the plaintext never shows.
        try:
            plaintext = getpass.getpass(f"plaintext for {name} (not echoed): ").encode()
        except EOFError:
            raise UsageError(
                "no plaintext was typed (end of input)",
                hint="type the value and press Enter, or pipe it in",
            ) from None
    else:
        plaintext = sys.stdin.buffer.read()
        if plaintext.endswith(b"\n"):
            log.warning(
                "the plaintext ends with a newline, which is kept in the value",
                name=name,
                hint="pipe it with printf '%s' to leave the newline out",
            )
    if not plaintext:
        raise DataError(
            f"the plaintext for {name} is empty: nothing was read on stdin",
            hint="pipe the value in (printf '%s' \"$VALUE\" | secrets-agent encrypt ...); "
            "a variable meant to be empty needs no encryption",
        )
    from secrets_agent.aws.bounded import run_bounded

    # Bounded as resolution is: botocore's read timeout ends a silent endpoint, not one that
    # answers a byte at a time, and its retries add up to several read timeouts.
    value: str = run_bounded(
        lambda: envelope.encrypt_value(
            plaintext,
            key_id=key_id,
            name=name,
            botocore_session=clients.session(),
            timeout=settings.timeout,
            region=region,
        ),
        timeout=settings.timeout,
        what=f"encrypting {name}",
        clients=clients,
    )
    _stdout(value + "\n")
    return 0
