"""The one program of the agent bundle (``docker/agent.Dockerfile``): PyInstaller freezes it
into ``/opt/secrets-agent/secrets-agent``, and ``/opt/secrets-agent/docker-entrypoint`` is a
link to it. What it does depends on the name it was started by:

- ``docker-entrypoint CMD [ARG...]``: what ``docker/docker-entrypoint.py`` does (the fast path
  first, importing only ``agent.fastpath`` when there is nothing to resolve);
- ``secrets-agent SUBCOMMAND ...``: what ``python -m agent`` does;
- ``secrets-agent --check-process``: supervise mode's check process (``agent.isolated`` starts
  the bundle that way, as it starts ``python -c`` outside it).
"""

import os
import sys

_name = os.path.basename(sys.argv[0])
_args = sys.argv[1:]

if _args == ["--check-process"]:
    from agent.check_process import main

    main()
elif _name.startswith("docker-entrypoint"):
    if _args == ["--version"]:
        from agent import __version__

        print(f"secrets-agent {__version__}")
        sys.exit(0)
    from agent.fastpath import exec_if_nothing_to_do

    exec_if_nothing_to_do(_args[1:] if _args[:1] == ["--"] else _args)

    from agent.cli import entrypoint_exec

    entrypoint_exec(_args)
else:
    if _args[:2] == ["exec", "--"]:
        from agent.fastpath import exec_if_nothing_to_do

        exec_if_nothing_to_do(_args[2:])

    from agent.cli import entrypoint

    entrypoint()
