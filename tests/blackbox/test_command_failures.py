"""A command that cannot be started gives one line, the shell's 126 or 127, and the same words
whichever way the agent starts it: exec with or without a prefix, supervise mode, and supervise
mode holding the listening sockets (``SECRETS_AGENT_LISTEN``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import base_env, error_line, moto_client, run_agent
from tests.support.moto_server import MotoServer, free_port
from tests.support.seed import put

MODES = ["exec-no-prefix", "exec", "supervise", "supervise-listen"]


def _setup(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The command line of ``case`` and the PATH it is looked up in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "the-tool"
    if case == "missing-in-path":
        return ["the-tool"], str(bin_dir)
    if case == "missing-path":
        return [str(tmp_path / "no" / "such" / "tool")], str(bin_dir)
    if case == "directory":
        return [str(bin_dir)], str(bin_dir)
    if case == "missing-interpreter":
        tool.write_text("#!/no/such/interpreter\n")
        tool.chmod(0o755)
    elif case == "not-executable":
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o644)
    elif case == "no-format":
        tool.write_bytes(b"\x00\x01\x02 not a program")
        tool.chmod(0o755)
    return ["the-tool"], f"{tmp_path / 'empty'}:{bin_dir}:/usr/bin:/bin"


CASES = {
    "missing-in-path": (127, "the-tool: not found in PATH"),
    "missing-path": (127, "tool: not found"),
    "missing-interpreter": (127, "the-tool: its #! interpreter was not found"),
    "directory": (126, "bin: is a directory"),
    "not-executable": (126, "the-tool: permission denied"),
    "no-format": (126, "the-tool: not an executable format"),
}


def _env(moto_url: str, mode: str, search: str) -> dict[str, str]:
    if mode == "exec-no-prefix":
        return base_env(None) | {"PATH": search}
    env = base_env(moto_url) | {"PARAMETER_STORE_PREFIX": "/cmd/app", "PATH": search}
    if mode.startswith("supervise"):
        env["SECRETS_AGENT_WATCH_INTERVAL"] = "60"
    if mode == "supervise-listen":
        env["SECRETS_AGENT_LISTEN"] = f"tcp://127.0.0.1:{free_port()}"
    return env


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_command_that_cannot_start_is_one_line_alike_in_every_mode(
    tmp_path: Path, moto: MotoServer, case: str
) -> None:
    put(moto_client(moto.url, "ssm"), "/cmd/app/token", "v")
    code, words = CASES[case]
    lines = {}
    for mode in MODES:
        command, search = _setup(tmp_path, case)
        run = run_agent(tmp_path, _env(moto.url, mode, search), command=command)
        assert run.returncode == code, (mode, run.stderr)
        assert run.child_env is None
        assert "Traceback" not in run.stderr
        line = error_line(run.stderr)
        assert words in line, (mode, line)
        lines[mode] = line
    assert len(set(lines.values())) == 1, lines
