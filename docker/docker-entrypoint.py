#!/usr/bin/env python3
"""The image's ENTRYPOINT: resolve secrets, then exec (or supervise) the command.

``docker-entrypoint.py CMD [ARG...]`` is ``secrets-agent exec -- CMD [ARG...]``;
``docker-entrypoint.py --version`` prints the version. With nothing
to resolve it execs the command before importing anything but ``secrets_agent.process.fastpath``.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A source checkout, not an install:
if os.path.isfile(os.path.join(_ROOT, "secrets_agent", "cli.py")):
    sys.path.insert(0, _ROOT)

from secrets_agent.process.fastpath import exec_if_nothing_to_do, strip_separator  # noqa: E402

_command = sys.argv[1:]
if _command == ["--version"]:
    from secrets_agent import __version__

    print(f"secrets-agent {__version__}")
    sys.exit(0)
exec_if_nothing_to_do(strip_separator(_command))

from secrets_agent.cli import entrypoint_exec  # noqa: E402

entrypoint_exec(_command)
