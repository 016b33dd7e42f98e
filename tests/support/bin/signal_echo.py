#!/usr/bin/env python3
"""A child command for supervisor tests (after dumb-init's tests): it reports what it got.

Writes one line per event to --out (appended, flushed; default stdout):

    ready pid=P ppid=P pgid=P sigblk=HEX sigign=HEX     at start, from /proc/self/status
    env NAME=VALUE                                        for each --env NAME (test data only)
    signal SIGNAME                                        for each caught signal
    orphan pid=P ppid=P                                   from an orphaned grandchild
    orphan exit pid=P                                     when it exits
    exit CODE                                             before a voluntary exit

Options: --exit N (exit at once), --kill-self SIG (die of SIG), --exit-on SIG (repeatable,
default SIGTERM and SIGINT; exit with --code N after it arrives), --ignore SIG (repeatable,
keep running through it), --linger S (seconds to wait after a stop signal before exiting),
--orphan S (double-fork a grandchild that reports its new parent, then exits after S seconds),
--signal-parent SIG (send SIG to the supervisor, as ``kill 1`` from ``docker exec`` would).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

CAUGHT = (
    "SIGTERM SIGINT SIGHUP SIGQUIT SIGUSR1 SIGUSR2 SIGWINCH SIGCONT SIGALRM SIGURG SIGPIPE"
).split()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--exit", type=int)
    parser.add_argument("--kill-self")
    parser.add_argument("--exit-on", action="append")
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("--code", type=int, default=0)
    parser.add_argument("--linger", type=float, default=0.0)
    parser.add_argument("--orphan", type=float)
    parser.add_argument("--signal-parent")
    args = parser.parse_args()

    fd = 1
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(line: str) -> None:
        os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))

    status = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for row in fh:
            key, _, value = row.partition(":")
            status[key] = value.strip()

    exit_on = set(args.exit_on or ["SIGTERM", "SIGINT"])

    def on_signal(signo: int, _frame: object) -> None:
        name = signal.Signals(signo).name
        emit(f"signal {name}")
        if name in exit_on and name not in args.ignore:
            if args.linger:
                time.sleep(args.linger)
            emit(f"exit {args.code}")
            os._exit(args.code)

    for name in CAUGHT:
        signal.signal(getattr(signal, name), on_signal)

    emit(
        f"ready pid={os.getpid()} ppid={os.getppid()} pgid={os.getpgrp()} "
        f"sigblk={status['SigBlk']} sigign={status['SigIgn']}"
    )
    for name in args.env:
        emit(f"env {name}={os.environ.get(name, '<unset>')}")

    if args.orphan is not None:
        spawn_orphan(emit, args.orphan)
    if args.signal_parent:
        os.kill(os.getppid(), getattr(signal, args.signal_parent))
    if args.exit is not None:
        emit(f"exit {args.exit}")
        return int(args.exit)
    if args.kill_self:
        sig = getattr(signal, args.kill_self)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(5)
        return 99
    while True:
        time.sleep(3600)


def spawn_orphan(emit: object, seconds: float) -> None:
    """Fork a middle process that forks the grandchild and exits at once; return once the
    grandchild, reparented, has reported (so that a command exiting right after cannot take
    the orphan down before its line is written, as a PID 1 supervisor's exit does)."""
    assert callable(emit)
    reported_r, reported_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(reported_r)
        parent = os.getpid()
        if os.fork() == 0:
            deadline = time.monotonic() + 5
            while os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.01)
            emit(f"orphan pid={os.getpid()} ppid={os.getppid()}")
            os.write(reported_w, b"x")
            os.close(reported_w)
            time.sleep(seconds)
            emit(f"orphan exit pid={os.getpid()}")
            os._exit(0)
        os._exit(0)
    os.close(reported_w)
    os.waitpid(middle, 0)
    os.read(reported_r, 1)
    os.close(reported_r)


if __name__ == "__main__":
    sys.exit(main())
