"""The one program of the agent bundle (``docker/agent.Dockerfile``, ``docker/make_bundle.py``):
``/opt/secrets-agent/secrets-agent`` is this file behind a
``#!/opt/secrets-agent/bin/python3.11 -I`` line, and ``/opt/secrets-agent/docker-entrypoint``
is a link to it. What it does depends on the name it was started by:

- ``docker-entrypoint CMD [ARG...]``: what ``docker/docker-entrypoint.py`` does (the fast path
  first, importing only ``secrets_agent.process.fastpath`` when there is nothing to resolve);
- ``secrets-agent SUBCOMMAND ...``: what ``python -m secrets_agent`` does.

Supervise mode's check process is the bundle's interpreter with ``-I -c``, as outside it.
"""

import os
import sys

_name = os.path.basename(sys.argv[0])
_args = sys.argv[1:]

if _name.startswith("docker-entrypoint"):
    if _args == ["--version"]:
        from secrets_agent import __version__

        print(f"secrets-agent {__version__}")
        sys.exit(0)
    from secrets_agent.process.fastpath import exec_if_nothing_to_do, strip_separator

    exec_if_nothing_to_do(strip_separator(_args))

    from secrets_agent.cli import entrypoint_exec

    entrypoint_exec(_args)
else:
    if _args[:2] == ["exec", "--"]:
        from secrets_agent.process.fastpath import exec_if_nothing_to_do

        exec_if_nothing_to_do(_args[2:])

    from secrets_agent.cli import entrypoint

    entrypoint()
