"""The shape of agent/: no import loop, and a pure core that never reaches AWS.

Read from the source with ``ast`` (every import, at module level or inside a function), so a
lazy import counts as much as a top-level one: a loop through a function body is still a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

AGENT = ROOT / "agent"
# Pure: no I/O, no AWS. They decide; the AWS layer fetches.
PURE = (
    "agent.aws_names",
    "agent.environment",
    "agent.errors",
    "agent.fanout",
    "agent.fastpath",
    "agent.layers",
    "agent.model",
    "agent.naming",
    "agent.plan",
    "agent.printable",
    "agent.protected",
    "agent.references",
    "agent.settings",
    "agent.sources",
)
AWS_LIBRARIES = ("botocore", "boto3", "aws_encryption_sdk", "urllib3")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            found.add(module)
            # "from agent import x" may import the module agent.x
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in AGENT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def external(name: str) -> set[str]:
    path = AGENT.joinpath(*name.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return {m.split(".")[0] for m in imports_of(path)}


def test_the_import_graph_has_no_loop() -> None:
    edges = graph()
    loops: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt.rpartition(".")[0] == node:
                continue  # a package importing its own submodule is not a loop
            if state.get(nxt) == 1:
                loops.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert loops == []


@pytest.mark.parametrize("name", PURE)
def test_the_pure_core_never_reaches_aws(name: str) -> None:
    edges = graph()
    if name not in edges:
        pytest.fail(f"{name} is listed as pure but does not exist")
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(edges[current])
    reached = {m for m in seen if m == "agent.aws" or m.startswith("agent.aws.")}
    assert reached == set(), f"{name} reaches the AWS layer through {sorted(seen)}"
    libraries = {lib for m in seen for lib in external(m) if lib in AWS_LIBRARIES}
    assert libraries == set(), f"{name} (through {sorted(seen)}) imports {libraries}"
