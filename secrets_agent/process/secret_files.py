"""Secrets as files: ``SECRETS_AGENT_FILES`` writes chosen variables to files instead of the
environment.

``SECRETS_AGENT_FILES="RAILS_MASTER_KEY=config/credentials/production.key,TLS_KEY=/run/secrets/
tls.key"``: each variable's resolved value (from a prefix, a reference, or the inherited
environment) is written to its path before the command starts, and the variable is left out
of the command's environment.

Where a file may go: below the working directory, ``/run/secrets`` or ``/dev/shm``. A path
with a ``..`` component, a symbolic link at any component, or an existing directory, device,
FIFO or socket at its end is refused (78, naming the variable and the path). Missing folders
below the root are created, mode 0700.

How a file is written: every folder is opened from ``/`` (or the working directory) one
component at a time with ``O_NOFOLLOW``, so a link swapped in after the check is not followed
either; the value goes to a new temporary file in the same folder (``O_CREAT|O_EXCL|
O_NOFOLLOW``, mode 0400, owned by the agent's effective user and group, who also run the
command: the agent has no user switching), is ``fsync``-ed, renamed over the path, and the
folder is ``fsync``-ed. A failure to write is 74 and leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from secrets_agent.core.errors import AgentError, ConfigError, NotFoundError, OutputError
from secrets_agent.core.model import Record, Secret
from secrets_agent.output.logs import Logger

if TYPE_CHECKING:
    from secrets_agent.supervise.supervisor import Change, Watcher

SETTING = "SECRETS_AGENT_FILES"
#: Absolute folders a file may be written below, besides the working directory.
FIXED_ROOTS = ("/run/secrets", "/dev/shm")  # noqa: S108 - written with O_EXCL, O_NOFOLLOW
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MODE = 0o400
DIR_MODE = 0o700


@dataclass(frozen=True)
class Target:
    """One file to write: ``start`` is ``/`` or the working directory; ``folders`` are the
    components from there to the file's folder; ``filename`` the last component."""

    name: str
    path: str
    start: str
    folders: tuple[str, ...]
    filename: str

    @property
    def full_path(self) -> str:
        return os.path.join(self.start, *self.folders, self.filename)

    def refused(self, why: str, hint: str = "") -> ConfigError:
        return ConfigError(
            f"{SETTING} maps {self.name} to {self.path!r}, which {why}",
            hint=hint or f"choose another path for {self.name} in {SETTING}",
        )


def _roots(cwd: str) -> list[str]:
    # A working directory of / would allow every path: it is then no root.
    return [*([cwd] if cwd.strip("/") else []), *FIXED_ROOTS]


def _within(path_parts: Sequence[str], root: str) -> bool:
    root_parts = [p for p in root.split("/") if p]
    return list(path_parts[: len(root_parts)]) == root_parts and len(path_parts) > len(root_parts)


def targets(mapping: Sequence[tuple[str, str]], *, cwd: str) -> tuple[Target, ...]:
    """Check every path against the roots and the file system as it is now; 78 if refused."""
    found: list[Target] = []
    files: dict[str, Target] = {}
    for name, path in mapping:
        target = _target(name, path, cwd=cwd)
        same = files.setdefault(target.full_path, target)
        if same is not target:
            raise target.refused(f"is the same file as {same.name}'s {same.path!r}")
        _inspect(target)
        found.append(target)
    return tuple(found)


def _target(name: str, path: str, *, cwd: str) -> Target:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    probe = Target(name, path, "/", (), "")
    if ".." in parts:
        raise probe.refused("holds a '..' component")
    if not parts or path.endswith("/"):
        raise probe.refused("names a folder, not a file")
    roots = ", ".join(["the working directory", *FIXED_ROOTS])
    if path.startswith("/"):
        if any(parts == [p for p in root.split("/") if p] for root in _roots(cwd)):
            raise probe.refused("is an existing folder")
        if not any(_within(parts, root) for root in _roots(cwd)):
            raise probe.refused(f"is outside the folders a secret file may go to ({roots})")
        return Target(name, path, "/", tuple(parts[:-1]), parts[-1])
    if not cwd.strip("/"):
        raise probe.refused(
            "is relative to the working directory /, where a secret file may not go",
            hint=f"set a working directory (WORKDIR), or give an absolute path under {roots}",
        )
    return Target(name, path, cwd, tuple(parts[:-1]), parts[-1])


def _inspect(target: Target) -> None:
    """lstat each component that exists: no link, folders then a regular file (or nothing)."""
    current = target.start
    parts = (*target.folders, target.filename)
    try:
        shared = _shared(os.stat(current))
        for index, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                return  # created when written
            last = index == len(parts) - 1
            _check_component(target, current, info, last=last)
            if not last:
                _check_owner(target, current, info, parent_shared=shared)
                shared = _shared(info)
    except OSError as exc:
        raise target.refused(f"cannot be inspected ({_why(exc)})") from None


def _shared(folder: os.stat_result) -> bool:
    """A folder every user may create names in (sticky and world-writable, as /dev/shm)."""
    return bool(folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH)


def _check_owner(
    target: Target, current: str, info: os.stat_result, *, parent_shared: bool
) -> None:
    """In a shared folder, a folder on the way must be ours or root's: another user who made
    it could replace the file in it before the command reads it."""
    if parent_shared and info.st_uid not in (os.geteuid(), 0):
        raise target.refused(
            f"goes through {current!r}, which user {info.st_uid} owns in a folder every user "
            "can write to",
            hint="remove that folder, or choose another path",
        )


def _check_component(target: Target, current: str, info: os.stat_result, *, last: bool) -> None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise target.refused(
            f"goes through the symbolic link {current!r}",
            hint="name the real path: the agent never writes a secret through a link",
        )
    if not last and not stat.S_ISDIR(mode):
        raise target.refused(f"goes through {current!r}, which is not a folder")
    if last and stat.S_ISDIR(mode):
        raise target.refused("is an existing folder")
    if last and not stat.S_ISREG(mode):
        kind = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        raise target.refused(f"is {kind}")


def _why(exc: OSError) -> str:
    code = exc.errno
    if isinstance(code, int):
        return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
    return type(exc).__name__


def split_env(
    env: Mapping[str, str], files: Sequence[Target]
) -> tuple[dict[str, str], dict[str, str]]:
    """The command's environment without the mapped variables, and their values.

    A mapped variable that nothing provided (unset or empty) is 66.
    """
    command_env = dict(env)
    values: dict[str, str] = {}
    for target in files:
        value = command_env.pop(target.name, "")
        if not value:
            raise NotFoundError(
                f"nothing provided {target.name} for its file {target.path!r} ({SETTING})",
                hint=f"store {target.name} under a prefix, set it to a reference, or remove it "
                f"from {SETTING}",
            )
        values[target.name] = value
    return command_env, values


def write_all(files: Sequence[Target], values: Mapping[str, str], *, log: Logger) -> None:
    for target in files:
        write(target, values[target.name])
    log.info(
        "secret files written",
        names=[t.name for t in files],
        paths=[t.path for t in files],
        mode=oct(MODE),
        uid=os.geteuid(),
        gid=os.getegid(),
    )


def write(target: Target, value: str) -> None:
    """Write one file atomically (see the module's docstring); 78 or 74 on failure."""
    data = value.encode("utf-8", "surrogateescape")
    folder = _open_folder(target)
    try:
        _replace(target, folder, data)
    finally:
        os.close(folder)


def _open_folder(target: Target) -> int:
    """The file's folder, opened one component at a time without following links."""
    try:
        fd = os.open(target.start, _DIR_FLAGS)
    except OSError as exc:
        raise _write_failed(target, "opening its folder", exc) from None
    current = target.start
    try:
        shared = _shared(os.fstat(fd))
        for part in target.folders:
            current = os.path.join(current, part)
            try:
                info: os.stat_result | None = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is None:
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: checked by the open below
            else:
                _check_component(target, current, info, last=False)
            child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
            opened = os.fstat(fd)
            _check_owner(target, current, opened, parent_shared=shared)
            shared = _shared(opened)
    except AgentError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.ELOOP:
            raise target.refused(f"goes through the symbolic link {current!r}") from None
        raise _write_failed(target, f"opening or creating the folder {current!r}", exc) from None
    return fd


def _replace(target: Target, folder: int, data: bytes) -> None:
    try:
        info: os.stat_result | None = os.stat(target.filename, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _write_failed(target, "inspecting it", exc) from None
    if info is not None:
        _check_component(target, target.path, info, last=True)
    temp = f".secrets-agent-{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temp, _TEMP_FLAGS, MODE, dir_fd=folder)
    except OSError as exc:
        raise _write_failed(target, "creating a temporary file beside it", exc) from None
    done = False
    try:
        try:
            owner = (os.geteuid(), os.getegid())
            info = os.fstat(fd)
            if (info.st_uid, info.st_gid) != owner:  # a set-group-ID folder gives its group
                os.fchown(fd, *owner)
            os.fchmod(fd, MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, target.filename, src_dir_fd=folder, dst_dir_fd=folder)
        done = True
        _sync_folder(folder)
    except OSError as exc:
        raise _write_failed(target, "writing it", exc) from None
    finally:
        if not done:
            try:
                os.unlink(temp, dir_fd=folder)
            except OSError:
                pass


def _sync_folder(folder: int) -> None:
    try:
        os.fsync(folder)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS):  # a file system without folder sync
            raise


def _write_failed(target: Target, what: str, exc: OSError) -> OutputError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return OutputError(
        f"cannot write {target.name}'s file {target.path!r} ({what}: {_why(exc)}); "
        "the command was not started",
        hint="free space on that file system"
        if full
        else f"make that folder writable, or choose another path in {SETTING}",
    )


def preparer(
    files: Sequence[Target], *, log: Logger
) -> Callable[[Mapping[str, str]], dict[str, str]]:
    """``prepare(env)``: write the files from ``env`` and return the command's environment.
    Called before each start of the command (the first, and each restart after a rotation)."""

    def prepare(env: Mapping[str, str]) -> dict[str, str]:
        command_env, values = split_env(env, files)
        write_all(files, values, log=log)
        return command_env

    return prepare


class FilesWatcher:
    """Wraps supervise mode's watcher: a new environment that lacks a mapped variable is a
    failed check (the running command and its files are kept), not a restart that cannot
    write its files."""

    def __init__(self, inner: Watcher, files: Sequence[Target]) -> None:
        self._inner = inner
        self._files = tuple(files)

    def poll(self) -> Change | None:
        change = self._inner.poll()
        if change is not None and change.env is not None:
            split_env(change.env, self._files)
        return change

    def commit(self) -> None:
        self._inner.commit()


def targets_here(mapping: Sequence[tuple[str, str]]) -> tuple[Target, ...]:
    """:func:`targets` relative to the agent's working directory."""
    try:
        cwd = os.getcwd()
    except OSError as exc:
        raise ConfigError(
            f"{SETTING} is set, but the working directory cannot be read ({_why(exc)})",
            hint="start the agent in an existing working directory",
        ) from None
    return targets(mapping, cwd=cwd)


def check_records(
    records: Sequence[Record], env: Mapping[str, str], files: Sequence[Target]
) -> tuple[Record, ...]:
    """``check``'s rows: each mapped variable must be provided (66); one that only the
    inherited environment provides gets a row with source ``environment``."""
    split_env(env, files)
    shown = {r.name for r in records}
    extra = [
        Record(
            name=t.name,
            value=Secret(env[t.name]),
            source="environment",
            source_name=t.name,
        )
        for t in files
        if t.name not in shown
    ]
    return (*records, *extra)


def without_files(records: Sequence[Record], files: Sequence[Target]) -> tuple[Record, ...]:
    """``env``'s rows: a variable written to a file is not in the command's environment."""
    mapped = {t.name for t in files}
    return tuple(r for r in records if r.name not in mapped)
