import sys

from secrets_agent.process.fastpath import exec_if_nothing_to_do

if sys.argv[1:3] == ["exec", "--"]:
    exec_if_nothing_to_do(sys.argv[3:])

from secrets_agent.cli import entrypoint

entrypoint()
