#!/usr/bin/env python3
"""A small HTTP app that speaks socket activation and readiness as puma does, for the handoff
tests that need many quick starts.

It serves on the socket it was given as fd 3 (LISTEN_FDS, LISTEN_PID must be its own pid),
answers every GET with its pid and the SHA-256 of ``$APP_SECRET``, and sends ``READY=1`` to
``$NOTIFY_SOCKET`` once it serves. ``$APP_BOOT``: ``hang`` never gets ready, ``crash`` exits 1
at boot. On SIGTERM it sends ``STOPPING=1`` and exits with ``--code`` (``--hang-code`` when it
was never ready); with ``$APP_TERM=ignore`` it only reports the signal. One JSON line per event
goes to ``--out``: what it was started with.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time


def report(path: str, **fields: object) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


def is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def notify(state: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.send(state.encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--code", type=int, default=3)
    parser.add_argument("--hang-code", type=int, default=4)
    parser.add_argument("--file", help="report the SHA-256 of this file's content at start")
    args = parser.parse_args()
    boot = os.environ.get("APP_BOOT", "ok")
    fds = int(os.environ.get("LISTEN_FDS", "0"))
    status = open("/proc/self/status").read()
    blocked = next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk"))
    inherited = [fd for fd in range(3, 256) if is_open(fd)]
    file_sha = None
    if args.file:
        with open(args.file, "rb") as fh:
            file_sha = hashlib.sha256(fh.read()).hexdigest()
    report(
        args.out,
        event="start",
        file_sha=file_sha,
        boot=boot,
        listen_fds=os.environ.get("LISTEN_FDS"),
        listen_pid=os.environ.get("LISTEN_PID"),
        listen_fdnames=os.environ.get("LISTEN_FDNAMES"),
        notify_socket=bool(os.environ.get("NOTIFY_SOCKET")),
        pgid=os.getpgrp(),
        sig_blocked=blocked,
        fds=inherited,
    )
    ready = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        report(args.out, event="SIGTERM")
        if os.environ.get("APP_TERM") == "ignore":
            return
        notify("STOPPING=1")
        sys.stdout.flush()
        os._exit(args.code if ready.is_set() else args.hang_code)

    signal.signal(signal.SIGTERM, on_term)
    if boot == "crash":
        sys.exit(1)
    if boot == "hang":
        while True:
            time.sleep(1)
    assert fds >= 1 and os.environ.get("LISTEN_PID") == str(os.getpid())
    listener = socket.socket(fileno=3)
    digest = hashlib.sha256(os.environ.get("APP_SECRET", "").encode()).hexdigest()
    body = json.dumps({"pid": os.getpid(), "sha256": digest}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        listener.getsockname()[:2], Handler, bind_and_activate=False
    )
    server.socket.close()
    server.socket = listener
    ready.set()
    notify("READY=1")
    report(args.out, event="ready")
    server.serve_forever()


if __name__ == "__main__":
    main()
