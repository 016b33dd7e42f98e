"""Command line: argv -> subcommand, the one place where errors become exit codes and one
stderr line, and stdout. What a subcommand builds and runs is ``secrets_agent.run``'s.

With no prefix, no reference and no agent setting, ``exec`` replaces itself at once, before
anything else is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from secrets_agent import __version__
from secrets_agent.core.errors import AgentError, DataError, OutputError, UsageError
from secrets_agent.core.printable import MAX_LINE, capped, printable
from secrets_agent.process.fastpath import (
    exec_if_nothing_to_do,
    needs_agent,
    strip_separator,
    undo_locale_coercion,
)
from secrets_agent.run import Stopped

if TYPE_CHECKING:
    import argparse

    from secrets_agent.output.logs import Logger


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


def _fail(error: AgentError) -> int:
    from secrets_agent.output import logs

    logs.close()
    if _json_mode():
        event = error.event()
        _stderr(logs.Logger(fmt="json").line("error", error.kind, **event, version=__version__))
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


def _parser() -> argparse.ArgumentParser:  # long: one table of the subcommands and options
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
    return error_boundary(lambda: _run_subcommand(args))


def error_boundary(run: Callable[[], int]) -> int:
    """``run()``'s exit code, or the one error line of what it raised and that line's code: an
    AgentError's own, 130/143 for a stop before the command started, 70 for a bug."""
    try:
        return run()
    except AgentError as error:
        return _fail(error)
    except Stopped as stop:
        return _fail(
            _Interrupted(stop.signum, f"stopped by signal {stop.signum} before the command started")
        )
    except KeyboardInterrupt:
        # SIGINT outside the resolution (whose handler raises Stopped): at start-up, or while
        # encrypt reads its plaintext.
        sigint = signal.SIGINT.value
        return _fail(_Interrupted(sigint, f"interrupted by signal {sigint}; nothing was done"))
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        # A bug. Its message could quote data (a value), so name only its type and where it was
        # raised; the command was not started.
        return _fail(_bug(exc))


def _run_subcommand(args: Any) -> int:
    """The parsed subcommand, run; ``AgentError`` and ``Stopped`` go to :func:`main`."""
    if args.subcommand not in (None, "exec") and sys.stdout is None:
        raise UsageError("stdout is closed", hint=f"{args.subcommand} prints its result there")
    if args.subcommand == "encrypt" and sys.stdin is None:
        raise UsageError("stdin is closed", hint="pipe the plaintext to encrypt on stdin")
    if args.subcommand == "exec":
        from secrets_agent.run import exec_mode

        return exec_mode(strip_separator(args.command))
    if args.subcommand == "env":
        from secrets_agent.run import env_text

        _stdout(env_text(fmt=args.format, reveal=args.reveal))
        return 0
    if args.subcommand == "check":
        return _cmd_check(fmt=args.format)
    if args.subcommand == "iam-policy":
        return _cmd_iam(args)
    if args.subcommand == "encrypt":
        return _cmd_encrypt(key_id=args.key_id, name=args.name)
    raise UsageError("no subcommand given", hint="run secrets-agent --help")


def _bug(exc: Exception) -> AgentError:
    """A bug's one line. Its message could quote data (a value), so name only its type and where
    it was raised; the command was not started."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = (
        f" at {os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}"
        if frame is not None
        else ""
    )
    return AgentError(
        f"{type(exc).__name__}{where}",
        hint="the command was not started; please report this line",
    )


def _cmd_check(*, fmt: str = "text") -> int:
    from secrets_agent.run import check_text

    if fmt != "json":
        _stdout(check_text(fmt))
        return 0
    # For CI: a document on stdout whatever happens, and the exit code a real start would have.
    from secrets_agent.output.render import render_check_failure

    try:
        _stdout(check_text(fmt))
        return 0
    except AgentError as error:
        if not isinstance(error, OutputError):
            _stdout(render_check_failure(error.exit_code, printable(error.line())))
        raise


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
    from secrets_agent.core.aws_names import kms_region
    from secrets_agent.core.naming import check_settable
    from secrets_agent.run import make_clients, setup

    check_settable(name, origin="--name")
    environ = dict(os.environ)
    settings, log = setup(environ)
    clients = make_clients(environ, settings, log)
    # A key ARN names its region; a key id or an alias is looked up in the configured one
    # (78 when there is none, before anything is read).
    region = kms_region(key_id) or clients.default_region()
    plaintext = _read_plaintext(name, log)
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


def _read_plaintext(name: str, log: Logger) -> bytes:
    """``encrypt``'s plaintext: typed at a terminal without echo, or piped on stdin; a
    ``DataError`` when empty."""
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
    return plaintext
