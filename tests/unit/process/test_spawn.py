"""secrets_agent.process.spawn: command lookup with the shell's 126/127, and wait statuses as exit
codes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from secrets_agent.core.errors import CommandNotExecutableError, CommandNotFoundError
from secrets_agent.process.spawn import exit_code, find_command, spawn_command


def make(path: Path, mode: int) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_path_search_skips_a_non_executable_match(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    make(first / "tool", 0o644)
    good = make(second / "tool", 0o755)
    assert find_command("tool", f"{first}:{second}") == str(good)


def test_only_a_non_executable_match_is_126(tmp_path: Path) -> None:
    make(tmp_path / "tool", 0o644)
    with pytest.raises(CommandNotExecutableError):
        find_command("tool", str(tmp_path))


def test_directory_is_126(tmp_path: Path) -> None:
    with pytest.raises(CommandNotExecutableError):
        find_command(str(tmp_path), "/usr/bin")


@pytest.mark.parametrize("name", ["no-such-tool-xyz", "/no/such/tool", ""])
def test_missing_is_127(name: str, tmp_path: Path) -> None:
    with pytest.raises(CommandNotFoundError):
        find_command(name, str(tmp_path))


def test_name_with_a_slash_is_not_searched(tmp_path: Path) -> None:
    make(tmp_path / "tool", 0o755)
    with pytest.raises(CommandNotFoundError):
        find_command("sub/tool", str(tmp_path))


def test_missing_interpreter_is_127_and_no_shebang_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(CommandNotFoundError):
        spawn_command([str(script)], {"PATH": "/usr/bin:/bin"})
    script.write_text("\x00\x01not a program")
    with pytest.raises(CommandNotExecutableError):
        spawn_command([str(script)], {"PATH": "/usr/bin:/bin"})


def test_the_command_is_looked_up_in_its_own_path(tmp_path: Path) -> None:
    make(tmp_path / "only-here", 0o755)
    pid = spawn_command(["only-here"], {"PATH": str(tmp_path)})
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 0


def test_exit_code_of_a_signal_death_is_128_plus_n() -> None:
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 128 + signal.SIGKILL
