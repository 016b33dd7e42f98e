"""The one program of the agent bundle (``docker/agent.Dockerfile``): PyInstaller freezes it
into ``/opt/secrets-agent/secrets-agent``, and ``/opt/secrets-agent/docker-entrypoint`` is a
link to it. What it does depends on the name it was started by:

- ``docker-entrypoint CMD [ARG...]``: what ``docker/docker-entrypoint.py`` does (the fast path
  first, importing only ``secrets_agent.process.fastpath`` when there is nothing to resolve);
- ``secrets-agent SUBCOMMAND ...``: what ``python -m secrets_agent`` does;
- ``secrets-agent --check-process``: supervise mode's check process
(``secrets_agent.supervise.isolated`` starts
  the bundle that way, as it starts ``python -c`` outside it).
"""

import os
import sys


def _restore_environment() -> None:
    """PyInstaller's bootloader starts this program a second time with ``LD_LIBRARY_PATH``
    pointing into ``_internal`` (any earlier value saved in ``LD_LIBRARY_PATH_ORIG``) and
    ``_PYI_*`` variables of its own. The command must get the environment the agent was given,
    so they are put back first. The dynamic loader read ``LD_LIBRARY_PATH`` when this process
    started: the change affects only the processes it starts."""
    env = os.environ
    for key in [key for key in env if key.startswith("_PYI_")]:
        del env[key]
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is None:
        env.pop("LD_LIBRARY_PATH", None)
    else:
        env["LD_LIBRARY_PATH"] = original


_restore_environment()
_name = os.path.basename(sys.argv[0])
_args = sys.argv[1:]

if _args == ["--check-process"]:
    from secrets_agent.supervise.check_process import main

    main()
elif _name.startswith("docker-entrypoint"):
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
