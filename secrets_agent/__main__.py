import sys

from agent.fastpath import exec_if_nothing_to_do

if sys.argv[1:3] == ["exec", "--"]:
    exec_if_nothing_to_do(sys.argv[3:])

from agent.cli import entrypoint

entrypoint()
