#!/usr/bin/env python3
"""The image's ENTRYPOINT: resolve secrets, then exec (or supervise) the command.

``docker-entrypoint.py CMD [ARG...]`` is ``secrets-agent exec -- CMD [ARG...]``.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_ROOT, "agent", "cli.py")):  # a source checkout, not an install
    sys.path.insert(0, _ROOT)

from agent.cli import entrypoint_exec  # noqa: E402

entrypoint_exec(sys.argv[1:])
