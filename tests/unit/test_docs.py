"""The documentation is tested: links resolve, JSON and HCL blocks parse, HCL is laid out as
``terraform fmt`` lays it out, and the figures the README quotes are the benchmark's.

The ``terraform fmt`` check is a checker of its canonical layout for the subset the docs use,
since terraform itself is not installable here. It checks:

- no tab, no trailing space, a newline at the end;
- indentation as hclwrite computes it: a line that opens more brackets (``{``, ``[``, ``(``)
  than it closes adds one level of two spaces however many it opens (``jsonencode([`` is one
  level), a line that closes more than it opens is indented after the levels it closes;
- ``=`` alignment as hclwrite does it: consecutive lines that each hold a whole
  ``key = value`` attribute (the value opens no bracket it does not close) form a run; in a run
  every ``=`` stands one space after the longest key; a line whose value opens a multi-line
  bracket (``x = [``), a blank line, a comment line or any other line ends the run and is
  written ``key = `` with one space;
- outside strings and comments, no run of two spaces except that alignment;
- a trailing comment is preceded by one space and has no trailing comment on the lines
  around it (hclwrite would align those: the docs avoid them).

It does not check: spaces around other operators and inside brackets, heredocs, the alignment
of trailing comments, blank lines that fmt would remove, or the order of anything. Strings are
read as double-quoted literals whose ``${...}`` interpolations hold no quote.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "iam" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def blocks(language: str) -> list[tuple[str, str]]:
    """Every fenced block of ``language`` in the docs, as (an id for the test, its text)."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) == language:
                line = text.count("\n", 0, m.start()) + 1
                found.append((f"{doc.relative_to(ROOT)}:{line}", m.group(2)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def test_slug_follows_github() -> None:
    assert slug("From ECS's native `secrets`") == "from-ecss-native-secrets"
    assert slug("Rotation without a dropped request: `SECRETS_AGENT_LISTEN`") == (
        "rotation-without-a-dropped-request-secrets_agent_listen"
    )
    assert slug("3. The usual causes") == "3-the-usual-causes"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    broken = re.findall(r"\]\([^)\s]*\s", text)  # a target cut by a space or a line break
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(target)
    assert broken == [], f"{doc.relative_to(ROOT)}: {broken}"


def test_the_checks_find_what_they_look_for() -> None:
    """The block and link finders are not vacuous."""
    assert len(blocks("json")) >= 8 and len(blocks("hcl")) >= 5
    assert "docs/ecs.md" in LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))[0:40]


@pytest.mark.parametrize(("where", "text"), blocks("json"), ids=[w for w, _ in blocks("json")])
def test_every_json_block_parses(where: str, text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        # One JSON document per line (log lines) is also JSON.
        for line in text.splitlines():
            json.loads(line)


@pytest.mark.parametrize(("where", "text"), blocks("hcl"), ids=[w for w, _ in blocks("hcl")])
def test_every_hcl_block_parses(where: str, text: str) -> None:
    hcl2.loads(text)


@pytest.mark.parametrize(("where", "text"), blocks("hcl"), ids=[w for w, _ in blocks("hcl")])
def test_every_hcl_block_is_terraform_fmt_clean(where: str, text: str) -> None:
    assert fmt_problems(text) == []


# -- a checker of terraform fmt's layout (see the module docstring for what it covers) --------

OPEN, CLOSE = "{[(", "}])"


def split_code(line: str) -> tuple[str, str]:
    """The line's code with string contents blanked (same length), and its trailing comment."""
    out = []
    i, in_string = 0, False
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                out.append("xx")
                i += 2
                continue
            if c == '"':
                in_string = False
                out.append(c)
            else:
                out.append("x")
        elif c == '"':
            in_string = True
            out.append(c)
        elif c == "#" or line.startswith("//", i):
            return "".join(out), line[i:]
        else:
            out.append(c)
        i += 1
    return "".join(out), ""


def net_brackets(code: str) -> int:
    return sum(code.count(c) for c in OPEN) - sum(code.count(c) for c in CLOSE)


ASSIGN = re.compile(r"^(\s*)([^\s=]+)(\s*)=(?![=>])(.*)$")


def fmt_problems(text: str) -> list[str]:
    problems = []
    lines = text.split("\n")
    if lines[-1] != "":
        problems.append("no newline at the end")
    lines = lines[:-1]
    indents: list[int] = []  # the open levels, each with how many brackets it holds
    run: list[tuple[int, int, int]] = []  # (line number, key end, '=' column)

    def close_run() -> None:
        if run:
            want = max(end for _, end, _ in run) + 1
            for n, _, col in run:
                if col != want:
                    problems.append(
                        f"line {n}: '=' at column {col}, terraform fmt puts it at {want}"
                    )
            run.clear()

    comments = []
    for n, line in enumerate(lines, start=1):
        if "\t" in line:
            problems.append(f"line {n}: a tab")
        if line != line.rstrip():
            problems.append(f"line {n}: trailing space")
        code, comment = split_code(line)
        stripped = code.strip()
        comments.append(bool(comment) and bool(stripped))
        if not stripped:
            close_run()
            if comment and line[: len(line) - len(line.lstrip())] != "  " * len(indents):
                problems.append(f"line {n}: comment indented, want {2 * len(indents)}")
            continue
        net = net_brackets(code)
        level = len(indents)
        if net < 0:
            closed = -net
            while closed > 0 and indents:
                if closed >= indents[-1]:
                    closed -= indents.pop()
                else:
                    indents[-1] -= closed
                    closed = 0
            level = len(indents)
        elif net > 0:
            indents.append(net)
        indent = len(code) - len(code.lstrip())
        if indent != 2 * level:
            problems.append(f"line {n}: indented {indent}, terraform fmt indents {2 * level}")
        body = code.rstrip()
        m = ASSIGN.match(body)
        whole = m is not None and net_brackets(m.group(4)) == 0 and stripped[0] not in OPEN + CLOSE
        if whole and m is not None:
            run.append(
                (n, len(m.group(1)) + len(m.group(2)), len(m.group(1) + m.group(2) + m.group(3)))
            )
            rest = m.group(4)
            if not rest.startswith(" ") or rest.startswith("  "):
                problems.append(f"line {n}: not one space after '='")
            inner = rest
        else:
            close_run()
            inner = body.lstrip()
            if m is not None and stripped[0] not in OPEN + CLOSE:
                if m.group(3) != " ":
                    problems.append(
                        f"line {n}: not one space before '=' (not aligned: it opens a block)"
                    )
                inner = m.group(2) + " =" + m.group(4)
        if "  " in inner.strip():
            problems.append(f"line {n}: two spaces in a row")
        if (comment and not code.endswith(" ")) or (code.endswith("  ") and comment):
            problems.append(f"line {n}: a trailing comment needs exactly one space before it")
    close_run()
    for n in range(1, len(comments)):
        if comments[n] and comments[n - 1]:
            problems.append(
                f"lines {n}-{n + 1}: trailing comments on adjacent lines (fmt aligns them)"
            )
    if indents:
        problems.append(f"brackets do not balance ({indents})")
    return problems


def test_the_fmt_checker_finds_what_terraform_fmt_changes() -> None:
    good = (
        'resource "a" "b" {\n  name  = "x"\n  count = 1\n  tags = {\n    a = "${var.x}"\n  }\n}\n'
    )
    assert fmt_problems(good) == []
    assert fmt_problems(good.replace("name  =", "name =")) != []  # not aligned
    assert fmt_problems(good.replace("  tags =", "  tags  =")) != []  # a block opener aligned
    assert fmt_problems(good.replace('    a = "', '   a = "')) != []  # indent
    assert fmt_problems(good.replace('"x"', '"x" ')) != []  # trailing space
    assert fmt_problems("x = [\n  { a = 1,  b = 2 },\n]\n") != []  # two spaces
    assert fmt_problems("x = [\n  { a = 1, b = 2 },\n]\n") == []
    assert fmt_problems("a = 1 # one\nb = 2 # two\n") != []  # comments fmt would align
    nested = "x = jsonencode([\n  {\n    a = 1\n  },\n])\n"
    assert fmt_problems(nested) == []  # two brackets opened on one line are one level
    assert fmt_problems(nested.replace("    a", "      a")) != []


# -- figures quoted from the benchmark ----------------------------------------------------------


def bench_ms(approach: str, count: int) -> str:
    result = json.loads((ROOT / "bench" / "results.json").read_text(encoding="utf-8"))
    rows = result["samples"][approach][str(count)]
    return f"{statistics.median(r[0] for r in rows) * 1000:,.0f} ms"


def test_the_readme_quotes_the_benchmark() -> None:
    """The start-up figures the README states are those of bench/results.json, the one place."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    old, agent = bench_ms("shell", 10), bench_ms("agent", 10)
    assert f"{old} for 10 secrets against the agent's {agent}" in readme
    perf = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert f"{old} for 10, {bench_ms('shell', 200)} for\n200" in perf


def test_one_figure_per_cost_of_the_old_script() -> None:
    """The old script's cost per secret is stated once, from the benchmark, not three ways."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert not re.search(r"\d s per secret", text), doc


# -- the exit codes -----------------------------------------------------------------------------


def exit_code_column(text: str, header: str) -> set[str]:
    start = text.index(header)
    table = text[start : text.index("\n\n", start)]
    return set(re.findall(r"^\| (\d+(?: / \d+)?) \|", table, flags=re.M))


def test_the_exit_code_tables_agree_with_the_code() -> None:
    """Every error class's code is in the reference table and in the README's short one."""
    from secrets_agent.core import errors

    codes = {
        str(cls.exit_code)
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AgentError)
    }
    reference = exit_code_column(
        (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"), "| code | meaning |\n"
    )
    readme = exit_code_column(
        (ROOT / "README.md").read_text(encoding="utf-8"),
        "| code | meaning | the usual cause on ECS |",
    )
    flat = {c for row in reference for c in row.split(" / ")}
    assert codes <= flat, codes - flat
    assert readme == reference
