"""The fast path's exec rules, which the full path's exec imports: the signal reset before exec
and the PATH search."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from secrets_agent.process import execute, fastpath


def test_the_exec_path_resets_signals_with_the_fast_paths_rule() -> None:
    assert vars(execute)["restore_signals"] is fastpath.restore_signals
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
            fastpath.restore_signals()
            reset = (
                signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL
                and signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL
                and signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()
            )
            code = 0 if reset else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_path_search_keeps_the_first_error_that_is_not_a_missing_file(
    tmp_path: Path,
) -> None:
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    other.mkdir()
    (other / "tool").write_text("#!/bin/sh\n")  # found, but not executable
    with pytest.raises(PermissionError):
        fastpath.execvpe(["tool"], {"PATH": f"{empty}:{other}"})
    with pytest.raises(FileNotFoundError):
        fastpath.execvpe(["tool"], {"PATH": str(empty)})


def test_one_leading_separator_is_stripped() -> None:
    assert fastpath.strip_separator(["--", "--", "rails"]) == ["--", "rails"]
    assert fastpath.strip_separator(["rails", "--"]) == ["rails", "--"]
    assert fastpath.strip_separator([]) == []


def test_an_aesdk_value_is_a_reference_and_is_decrypted_by_one_prefix() -> None:
    from secrets_agent.aws import envelope
    from secrets_agent.core.references import AesdkRef, parse_reference

    value = fastpath.AESDK_PREFIX + "AAAA"
    assert fastpath.looks_like_reference(value) and fastpath.is_aesdk(value)
    assert parse_reference(value) == AesdkRef(ciphertext="AAAA")
    assert envelope.PREFIX is fastpath.AESDK_PREFIX
    assert not fastpath.is_aesdk("AESDK:AAAA")


def test_one_path_search_for_exec_spawn_and_the_failure_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secrets_agent.process import command_failure, spawn

    assert vars(spawn)["find_executable"] is fastpath.find_executable
    assert vars(command_failure)["find_executable"] is fastpath.find_executable
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "tool").mkdir()  # a directory is skipped, but remembered
    (second / "tool").write_text("#!/bin/sh\n")
    search = f"{tmp_path / 'missing'}:{first}:{second}"
    assert fastpath.find_executable("tool", search) == (None, str(first / "tool"))
    (second / "tool").chmod(0o755)
    assert fastpath.find_executable("tool", search) == (str(second / "tool"), str(first / "tool"))
    assert fastpath.find_executable("sub/tool", search) == (None, None)  # a slash: not searched
    monkeypatch.chdir(second)
    assert fastpath.find_executable("tool", "") == ("./tool", None)  # "" is the working folder
