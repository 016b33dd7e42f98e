"""Readiness: a ``NOTIFY_SOCKET`` of its own for each command the agent starts.

systemd's notification protocol: the command sends datagrams of ``KEY=VALUE`` lines to the
path in ``NOTIFY_SOCKET``. Puma 6 sends ``READY=1`` when it serves, and ``STOPPING=1`` when it
stops; puma 5 does the same when the ``sd_notify`` gem is installed (Debian's
``ruby-sd-notify``). One socket per command says which command a message came from without
trusting any pid in it. A command's socket stays open until that command has exited: puma 5
sends ``STOPPING=1`` during its graceful stop, and fails mid-stop when the socket is gone.

The sockets are bound in a directory of the agent's own (mode 0700) under the temporary
directory, and read without blocking.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile

from secrets_agent.core.errors import OutputError

#: The largest datagram read; systemd's own limit for a notification is larger, but the
#: messages here are a few words.
MAX_MESSAGE = 4096


class NotifySocket:
    """One command's notification socket."""

    def __init__(self, directory: str, name: str) -> None:
        self.path = os.path.join(directory, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(self.path)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.ready = False
        self.stopping = False

    def read(self) -> list[str]:
        """Every message waiting, as ``KEY=VALUE`` lines; sets ``ready`` and ``stopping``."""
        lines: list[str] = []
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            for line in data.decode("utf-8", "replace").splitlines():
                if line == "READY=1":
                    self.ready = True
                elif line == "STOPPING=1":
                    self.stopping = True
                lines.append(line)
        return lines

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class NotifySockets:
    """The directory of the sockets and a counter for their names."""

    def __init__(self) -> None:
        base = tempfile.gettempdir()
        if len(base) > 60:  # sun_path holds 107 bytes
            base = "/tmp"  # noqa: S108 - a private 0700 directory is made in it
        try:
            self.directory = tempfile.mkdtemp(prefix="secrets-agent-notify-", dir=base)
        except OSError as exc:
            raise _failed(f"cannot make a directory for them in {base}", exc) from None
        self.count = 0

    def new(self) -> NotifySocket:
        self.count += 1
        try:
            return NotifySocket(self.directory, f"n{self.count}")
        except OSError as exc:
            raise _failed(f"cannot bind one in {self.directory}", exc) from None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            for entry in os.listdir(self.directory):
                os.unlink(os.path.join(self.directory, entry))
            os.rmdir(self.directory)


def _failed(what: str, exc: OSError) -> OutputError:
    return OutputError(
        f"SECRETS_AGENT_LISTEN's notify sockets: {what} ({exc.strerror or exc})",
        hint="give the container a writable temporary directory (/tmp, or TMPDIR)",
    )
