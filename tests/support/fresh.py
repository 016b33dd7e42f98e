"""Code run in a fresh interpreter, to see what it imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable

from tests.conftest import ROOT


def imported_by(code: str, packages: Iterable[str]) -> list[str]:
    """Run ``code`` in a new interpreter (in this checkout); the modules of ``packages`` (top
    level names) it left imported, sorted."""
    script = (
        f"{code}\nimport sys\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {tuple(packages)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return found
