"""secrets_agent.process.execsize against the kernel itself: what the check accepts, execve
accepts, and it
refuses only what execve refuses or what sits within its small reserve for a #! interpreter.

Each case runs in a child process whose RLIMIT_STACK is set first (execve then allows a
quarter of it, at least 128 KiB), and finds the kernel's real boundary with posix_spawn.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = r"""
import json, os, sys
from secrets_agent.process.execsize import SHEBANG_RESERVE, exec_size_problem

TRUE = "/bin/true"
ARGV = [TRUE]
CHUNK = 60000  # below the one-string limit: only the total is tested


def env_of(size):
    env, i = {"PATH": "/usr/bin:/bin"}, 0
    while size > 0:
        env[f"V{i}"] = "x" * min(size, CHUNK)
        size -= CHUNK
        i += 1
    return env


def kernel_takes(env):
    try:
        pid = os.posix_spawn(TRUE, ARGV, env)
    except OSError:
        return False
    os.waitpid(pid, 0)
    return True


def ours_takes(env):
    return exec_size_problem(ARGV, env, filename=TRUE) is None


def largest(accepts, low, high):
    while low < high:
        mid = (low + high + 1) // 2
        if accepts(env_of(mid)):
            low = mid
        else:
            high = mid - 1
    return low


kernel = largest(kernel_takes, 0, 8 * 1024 * 1024)
ours = largest(ours_takes, 0, 8 * 1024 * 1024)
print(json.dumps({
    "kernel": kernel,
    "ours": ours,
    "kernel_takes_ours": kernel_takes(env_of(ours)),
    "reserve": SHEBANG_RESERVE + len(TRUE) + 1 + 8,
}))
"""


def probe(stack: int) -> dict[str, int]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))

    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
        preexec_fn=limit,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, int] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("stack", [256 * 1024, 1024 * 1024, 3 * 1024 * 1024])
def test_the_check_matches_the_kernel_within_its_reserve(stack: int) -> None:
    found = probe(stack)
    assert found["kernel_takes_ours"]  # never accepted what execve then refuses
    assert found["ours"] <= found["kernel"]
    assert found["kernel"] - found["ours"] <= found["reserve"]


def test_one_variable_longer_than_the_kernel_takes_is_named() -> None:
    from secrets_agent.process.execsize import exec_size_problem, max_arg_strlen

    longest = max_arg_strlen()
    fits = {"BLOB": "x" * (longest - len("BLOB=") - 1)}
    assert exec_size_problem(["/bin/true"], fits) is None
    over = {"BLOB": "x" * (longest - len("BLOB="))}
    problem = exec_size_problem(["/bin/true"], over)
    assert problem is not None and "BLOB" in problem and "x" * 10 not in problem
