"""SECRETS_AGENT_LISTEN: the sockets the agent binds once and hands to every command it starts.

The addresses are ``tcp://HOST:PORT`` (``tcp://[::1]:PORT`` for IPv6) and ``unix:///PATH``,
comma-separated. They are bound before the first start and kept open by the agent for as long
as it runs, so that a command stopping or starting never closes the port: a connection that
arrives while no command accepts waits in the kernel's backlog instead of being refused.

Each command gets them with systemd's socket-activation protocol, which puma speaks (it serves
an activated socket whose address matches its bind, and logs ``Activated tcp://...``): the
sockets as fds 3, 4, ..., ``LISTEN_FDS`` (their count), ``LISTEN_FDNAMES`` (one name each,
``:``-separated) and ``LISTEN_PID``, which must equal the command's own pid.

Why ``fork`` + ``execve`` here, and not ``posix_spawn`` as :mod:`secrets_agent.process.spawn` does:
the pid is
only known after the fork, and ``LISTEN_PID`` must be in the environment passed to ``execve``.
``posix_spawn`` cannot set it; a shim that sets it and execs the command would be ``/bin/sh``
(not in every image, and a shell between the agent and the command) or a second Python start
(tens of milliseconds and an interpreter's memory on every start). ``os.fork`` is safe here:
the supervisor forks from its main thread; the child runs only a fixed sequence of system calls
on data prepared before the fork (no lock, no import, no logging), and CPython 3.11 resets its
own locks in a forked child; ``execve`` follows at once. The child gets what ``posix_spawn``
gives the other commands: every signal at its default disposition, an empty signal mask, its
own process group. The sockets are inheritable only in the child (``dup2`` onto 3, 4, ...);
every other descriptor of the agent is close-on-exec.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat
from collections.abc import Mapping, Sequence

from secrets_agent.core.addresses import Address
from secrets_agent.core.errors import ConfigError
from secrets_agent.process.command_failure import command_failure
from secrets_agent.process.execsize import check_exec_size
from secrets_agent.process.spawn import DEFAULTED, find_command, path_of

#: The protocol's variables: set by the agent for the command it supervises, never inherited.
PROTOCOL_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET")
#: The first fd of the protocol (SD_LISTEN_FDS_START).
FIRST_FD = 3
#: The listen backlog: puma's own default; connections wait there while no command accepts.
BACKLOG = 1024
class Listeners:
    """The bound sockets, held by the agent until it exits."""

    def __init__(self, addresses: Sequence[Address]) -> None:
        self.addresses = tuple(addresses)
        self.sockets: list[socket.socket] = []
        try:
            for address in self.addresses:
                self.sockets.append(_bind(address))
        except BaseException:
            self.close()
            raise
        #: Each socket's inode, as ``/proc/PID/fd`` shows it (``socket:[INODE]``).
        self.inodes = tuple(os.fstat(s.fileno()).st_ino for s in self.sockets)

    @property
    def fds(self) -> list[int]:
        return [s.fileno() for s in self.sockets]

    def environment(self) -> dict[str, str]:
        """The protocol's variables but ``LISTEN_PID`` (set in the child)."""
        return {
            "LISTEN_FDS": str(len(self.sockets)),
            "LISTEN_FDNAMES": ":".join(a.fd_name for a in self.addresses),
        }

    def missing_in(self, pid: int) -> list[str] | None:
        """The addresses whose socket process ``pid`` does not hold, or None when its
        descriptors cannot be read (no ``/proc``)."""
        held: set[int] = set()
        try:
            for entry in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{entry}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    held.add(int(target[len("socket:[") : -1]))
        except OSError:
            return None
        pairs = zip(self.addresses, self.inodes, strict=True)
        return [address.text for address, inode in pairs if inode not in held]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def _bind(address: Address) -> socket.socket:
    if address.family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if stat.S_ISSOCK(os.lstat(address.path).st_mode):
                os.unlink(address.path)  # a stale socket from an earlier run
        except FileNotFoundError:
            pass
        except OSError as exc:
            sock.close()
            raise _bind_failed(address, exc) from None
        where: tuple[str, int] | str = address.path
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        where = (address.host, address.port)
    try:
        sock.bind(where)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise _bind_failed(address, exc) from None
    return sock


def _bind_failed(address: Address, exc: OSError) -> ConfigError:
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = "check SECRETS_AGENT_LISTEN"
    if exc.errno == errno.EADDRINUSE:
        hint = "something else listens there: stop it, or change SECRETS_AGENT_LISTEN"
    elif exc.errno == errno.EACCES:
        hint = "a port below 1024 needs root or CAP_NET_BIND_SERVICE; use 3000 or another"
    return ConfigError(f"SECRETS_AGENT_LISTEN: cannot listen on {address.text}: {why}", hint=hint)


def spawn_listening(
    argv: Sequence[str], env: Mapping[str, str], listeners: Listeners, extra: Mapping[str, str]
) -> int:
    """Start ``argv`` with ``env``, the listening sockets at fds 3.. and the protocol's
    variables (``extra`` adds more, e.g. ``NOTIFY_SOCKET``); return its pid.

    Raises ``CommandNotFoundError`` (127) or ``CommandNotExecutableError`` (126) as
    ``secrets_agent.process.spawn.spawn_command`` does, also when ``execve`` itself fails in the
    child.
    """
    path = find_command(argv[0], path_of(env))
    full = {k: v for k, v in env.items() if k not in PROTOCOL_VARIABLES}
    full.update(listeners.environment())
    full.update(extra)
    check_exec_size(argv, {**full, "LISTEN_PID": "4194304"}, filename=path)
    # Everything the child uses is made before the fork.
    path_b = os.fsencode(path)
    argv_b = [os.fsencode(arg) for arg in argv]
    env_b = {os.fsencode(k): os.fsencode(v) for k, v in full.items()}
    fds = listeners.fds
    read_end, write_end = os.pipe()  # close-on-exec: EOF on a successful exec
    high = max([*fds, read_end, write_end, FIRST_FD + len(fds)]) + 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its result is the command running
        _child(path_b, argv_b, env_b, fds, write_end, high)
    os.close(write_end)
    report = b""
    try:
        while chunk := os.read(read_end, 64):
            report += chunk
    finally:
        os.close(read_end)
    if not report:
        return pid
    os.waitpid(pid, 0)  # it ended at once with 127; reaped here, never seen by the loop
    code = int(report.split(b":")[0] or 0) or errno.EINVAL
    raise command_failure(argv[0], OSError(code, os.strerror(code), path), search=path_of(env))


def _child(
    path: bytes,
    argv: list[bytes],
    env: dict[bytes, bytes],
    fds: list[int],
    report: int,
    high: int,
) -> None:  # pragma: no cover - runs between fork and exec
    code = 0
    try:
        for sig in DEFAULTED:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setpgid(0, 0)
        # Out of the way first (a socket may sit on 3.. already), then onto 3, 4, ...
        report = fcntl.fcntl(report, fcntl.F_DUPFD_CLOEXEC, high)
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high) for fd in fds]
        for index, fd in enumerate(moved):
            os.dup2(fd, FIRST_FD + index, inheritable=True)
        env[b"LISTEN_PID"] = str(os.getpid()).encode()
        os.execve(path, argv, env)
    except OSError as exc:
        code = exc.errno or errno.EINVAL
    except BaseException:  # noqa: BLE001 - nothing may escape into a copy of the supervisor
        code = errno.EINVAL
    try:
        os.write(report, str(code).encode() + b":")
    finally:
        os._exit(127)
