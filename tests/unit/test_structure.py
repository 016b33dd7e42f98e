"""The shape of secrets_agent/: no import loop, and a pure core and a pipeline that never reach
AWS.

Read from the source with ``ast`` (every import, at module level or inside a function), so a
lazy import counts as much as a top-level one: a loop through a function body is still a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

AGENT = ROOT / "secrets_agent"
# Pure, by folder: every module of core/ (and the fast path, which imports nothing). They
# decide; the AWS wing fetches. The pipeline (resolve/) is handed its sources and decrypt
# function, so it never reaches AWS either.
PURE_FOLDERS = ("core", "resolve")
PURE_EXTRA = ("secrets_agent.process.fastpath",)
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


def pure_modules() -> list[str]:
    found = [
        module_name(p)
        for folder in PURE_FOLDERS
        for p in sorted((AGENT / folder).glob("*.py"))
        if p.name != "__init__.py"
    ]
    return [*found, *PURE_EXTRA]


@pytest.mark.parametrize("name", pure_modules())
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
    reached = {m for m in seen if m == "secrets_agent.aws" or m.startswith("secrets_agent.aws")}
    assert reached == set(), f"{name} reaches the AWS layer through {sorted(seen)}"
    libraries = {lib for m in seen for lib in external(m) if lib in AWS_LIBRARIES}
    assert libraries == set(), f"{name} (through {sorted(seen)}) imports {libraries}"


def test_only_the_aws_wing_imports_an_aws_library() -> None:
    """botocore, boto3, urllib3 and the Encryption SDK are imported in secrets_agent/aws/ only."""
    offenders = {
        name: sorted(lib for lib in external(name) if lib in AWS_LIBRARIES)
        for name in graph()
        if not name.startswith("secrets_agent.aws")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_nothing_outside_core() -> None:
    """The pure rules sit at the bottom: core/ never imports another wing (the fast path, which
    imports nothing at all, holds the str-only reference and setting-name tests they share; the
    package itself holds only ``__version__``)."""
    upward = {
        name: sorted(
            m
            for m in edges
            if not m.startswith("secrets_agent.core") and m not in (*PURE_EXTRA, "secrets_agent")
        )
        for name, edges in graph().items()
        if name.startswith("secrets_agent.core.")
    }
    assert {k: v for k, v in upward.items() if v} == {}
