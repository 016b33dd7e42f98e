"""Assemble the agent bundle, ``/opt/secrets-agent`` (``docker/agent.Dockerfile`` runs this with
the build stage's Debian ``python3``): the same interpreter, made relocatable, with what the agent
imports and nothing else.

    python3 docker/make_bundle.py --site-packages VENV/lib/python3.11/site-packages \\
        --source . --dest /opt/secrets-agent

The folder it writes::

    secrets-agent             the agent's program: docker/bundle.py behind a #! line naming
    docker-entrypoint         bin/python3.11 -I; a link to secrets-agent (it reads its name)
    bin/python3.11            Debian's interpreter (libpython linked in statically), its
                              RUNPATH $ORIGIN/../lib
    bin/python3.11._pth       sys.path, relative to bin/; its presence also means no site
                              module, no PYTHON* variables and no user site-packages
    lib/*.so.*                the shared libraries outside glibc that the interpreter and the
                              extension modules link (libssl, libcrypto, libffi, libexpat, ...),
                              each found through its user's RUNPATH, never LD_LIBRARY_PATH
    lib/python3.11/           the standard library modules the agent and its dependencies
                              import, as .pyc files, and their extension modules (lib-dynload/)
    lib/site-packages/        the agent and requirements/runtime.lock's packages, as .pyc files;
                              botocore's data pruned to the services the agent calls

What goes in: the agent's package; each package of the lock that ``modulefinder`` reaches from
it, whole (botocore's data pruned by ``keep``), and the top-level extension modules; every
standard library module reached from all of that, from ``encodings`` and from ``C_IMPORTS``
(an import statement inside a function counts, so no call path misses one), less ``EXCLUDED``
and ``FALLBACKS``. The modules are .pyc files without their sources (they load without a stat
of a ``.py`` file), compiled without column tables (``-X no_debug_ranges``: a traceback shows
no carets) and without the modules' and functions' docstrings (the classes keep theirs: a
dataclass without one computes a signature when it is defined).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import marshal
import modulefinder
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
# The services the agent calls (SSM, Secrets Manager, KMS for aesdk:, ECS for redeploy mode)
# and those botocore's credential chain calls (STS for roles and web identity, SSO and
# SSO-OIDC for SSO profiles, Sign-In for `aws login` profiles).
SERVICES = {"ssm", "secretsmanager", "kms", "ecs", "sts", "sso", "sso-oidc", "signin"}
# The model files a client and its paginators read (no examples, no waiters).
MODEL_FILES = {"service-2.json", "endpoint-rule-set-1.json", "paginators-1.json"}
# Never imported on a call path of the agent, though import statements in functions that never
# run name some of them (pydoc, unittest, distutils ...); pip and setuptools are the
# virtualenv's own.
EXCLUDED = {
    "tkinter", "unittest", "pydoc", "doctest", "sqlite3", "lib2to3", "ensurepip", "idlelib",
    "test", "pydoc_data", "distutils", "setuptools", "pkg_resources", "_distutils_hack", "pip",
    "venv", "turtle", "turtledemo", "curses", "dbm", "readline",
}  # fmt: skip
# Modules the interpreter's C code imports by name, which no import statement shows: os.wait3
# and os.wait4 import resource (supervise mode reaps with os.wait4), time.strptime and
# datetime.strptime _strptime, a warning with a source the warnings module, pickling copyreg
# and _compat_pickle, _json's errors json.decoder, _decimal numbers and collections,
# _elementtree xml.etree.ElementPath (socket's host names take encodings.idna: all of
# encodings is in).
C_IMPORTS = [
    "resource", "_strptime", "warnings", "copyreg", "_compat_pickle", "json.decoder",
    "numbers", "collections", "xml.etree.ElementPath",
]  # fmt: skip
# Pure-Python twins of C modules the bundle has: decimal imports _pydecimal only without _decimal.
FALLBACKS = {"_pydecimal.py"}
# site-packages entries that are the virtualenv's, not the lock's.
NOT_COPIED = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "__pycache__"}
# Of a package's .dist-info, what importlib.metadata reads and the licenses.
METADATA_KEPT = ("METADATA", "LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")
ELF_MAGIC = b"\x7fELF"


def keep(relative: str) -> bool:
    """A file of site-packages: botocore/data keeps its top-level files (endpoints, partitions,
    retry and default configuration) and the models of SERVICES; boto3's resource models are
    never used."""
    parts = relative.split("/")
    if parts[-1].endswith((".pyi", "py.typed")):
        return False
    if parts[0].endswith(".dist-info"):
        return "licenses" in parts or parts[-1].upper().startswith(METADATA_KEPT)
    if parts[:2] == ["boto3", "data"]:
        return False
    if parts[:2] != ["botocore", "data"] or len(parts) == 3:
        return True
    name = parts[-1].removesuffix(".gz")
    return parts[2] in SERVICES and name in MODEL_FILES


def module_names(root: Path, package: str = "") -> list[str]:
    """Every module below ``root`` (a folder on sys.path), or of its ``package``, as dotted
    names."""
    names = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts and not any(p in EXCLUDED or not p.isidentifier() for p in parts):
            names.append(".".join(parts))
    return names


def reached(roots: list[str], search: list[Path]) -> set[Path]:
    """The files of the modules ``roots`` import, directly or not (their import statements,
    wherever they are), found on ``search``."""
    finder = modulefinder.ModuleFinder(path=[str(p) for p in search], excludes=sorted(EXCLUDED))
    for name in roots:
        try:
            finder.import_hook(name)
        except (ImportError, SyntaxError) as exc:
            print(f"make_bundle: {name} not analysed: {exc}", file=sys.stderr)
    return {Path(m.__file__) for m in finder.modules.values() if m.__file__}


def site_entries(site: Path, modules: set[Path]) -> list[Path]:
    """The entries of site-packages to copy: the top-level packages and modules that
    ``modules`` holds, every top-level extension module (compiled code imports them:
    cryptography's Rust imports _cffi_backend), and the .dist-info of each of those."""
    tops = {m.relative_to(site).parts[0] for m in modules if m.is_relative_to(site)}
    tops.update(p.name for p in site.glob("*.so"))
    entries = [site / name for name in sorted(tops) if name not in NOT_COPIED]
    for info in sorted(site.glob("*.dist-info")):
        record = (info / "RECORD").read_text().splitlines()
        if tops & {line.split("/", 1)[0].split(",", 1)[0] for line in record}:
            entries.append(info)
    return entries


def stdlib_files(modules: set[Path], stdlib: Path) -> set[Path]:
    """Of ``modules``, the standard library's files (.py and extension modules)."""
    found = {p for p in modules if p.is_relative_to(stdlib) and p.name not in FALLBACKS}
    # sysconfig reads its build-time variables from a module named at run time.
    if any(p.name == "sysconfig.py" for p in found):
        found.update(stdlib.glob("_sysconfigdata_*.py"))
    return found


def copy_tree(source: Path, target: Path) -> None:
    """A folder of site-packages (or the agent's package), with the files ``keep`` keeps."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        if not keep(f"{source.name}/{relative.as_posix()}"):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """The module's and the functions' docstrings out (the classes keep theirs: dataclasses
    would compute a signature at import for each class without one); line numbers unchanged."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            if isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.copy_location(ast.Pass(), first)]
    return tree


def compile_tree(root: Path) -> None:
    """Every .py file below ``root`` replaced by its .pyc file (docstrings stripped, compiled
    by this interpreter, which runs with -X no_debug_ranges)."""
    for source in sorted(root.rglob("*.py")):
        tree = strip_docstrings(ast.parse(source.read_bytes(), str(source)))
        code = compile(tree, str(source), "exec", dont_inherit=True)
        # A timestamp .pyc header (magic, flags, mtime, size): without a source beside it,
        # the import system checks only the magic number.
        header = importlib.util.MAGIC_NUMBER + bytes(12)
        source.with_suffix(".pyc").write_bytes(header + marshal.dumps(code))
        source.unlink()


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == ELF_MAGIC


def needed(path: Path) -> dict[str, Path]:
    """The shared libraries ``path`` needs, by name, as the build stage resolves them."""
    out = subprocess.run(
        ["/usr/bin/ldd", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return {m[1]: Path(m[2]) for m in re.finditer(r"^\s*(\S+) => (/\S+)", out, re.M)}


def in_glibc(path: Path, cache: dict[Path, bool]) -> bool:
    """Is ``path`` part of glibc (Debian's libc6), which every glibc base has?"""
    if path not in cache:
        owners = set()
        for name in {str(path), str(path.resolve())}:  # dpkg knows the path before /usr merge
            found = subprocess.run(["/usr/bin/dpkg", "-S", name], capture_output=True, text=True)
            owners.update(line.split(":", 1)[0] for line in found.stdout.splitlines())
        cache[path] = "libc6" in owners
    return cache[path]


def link_libraries(dest: Path) -> list[str]:
    """Copy the libraries outside glibc that the folder's programs and extension modules need
    into lib/, and point each user's RUNPATH at lib/ relative to $ORIGIN."""
    libdir = dest / "lib"
    cache: dict[Path, bool] = {}
    pending = [p for p in sorted(dest.rglob("*")) if p.is_file() and is_elf(p)]
    copied: list[str] = []
    while pending:
        elf = pending.pop()
        wanted = {n: p for n, p in needed(elf).items() if not in_glibc(p, cache)}
        for name, source in wanted.items():
            if not (libdir / name).exists():
                shutil.copy2(source.resolve(), libdir / name)
                copied.append(name)
                pending.append(libdir / name)
        if wanted:
            origin = os.path.relpath(libdir, elf.parent)
            runpath = "$ORIGIN" if origin == "." else f"$ORIGIN/{origin}"
            subprocess.run(["/usr/bin/patchelf", "--set-rpath", runpath, str(elf)], check=True)
    return copied


def check_libraries(dest: Path) -> None:
    """Every library an ELF file of the folder needs resolves into the folder or to glibc."""
    cache: dict[Path, bool] = {}
    for elf in (p for p in sorted(dest.rglob("*")) if p.is_file() and is_elf(p)):
        for name, path in needed(elf).items():
            if not path.is_relative_to(dest) and not in_glibc(path, cache):
                sys.exit(f"make_bundle: {elf} finds {name} outside the bundle: {path}")


def check_imports(python: Path, names: list[str]) -> None:
    """Every module of the agent imports with the bundle's own interpreter (``python -I``, from
    "/"): a module the standard library's closure missed fails the build, not a call path."""
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    subprocess.run([str(python), "-I", "-c", code, *names], check=True, cwd="/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-packages", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True, help="this repository")
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    if "no_debug_ranges" not in sys._xoptions:
        sys.exit("make_bundle: run it as python3 -X no_debug_ranges (no column tables in .pyc)")
    dest: Path = args.dest.resolve()  # the #! line names the interpreter by this path
    site: Path = args.site_packages
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = Path(sysconfig.get_config_var("DESTSHARED"))
    lib_python = dest / "lib" / PYTHON
    lib_site = dest / "lib" / "site-packages"

    # The agent's package, and the lock's packages it imports (each whole, pruned).
    copy_tree(args.source / "secrets_agent", lib_site / "secrets_agent")
    agent = reached(
        module_names(args.source, "secrets_agent"), [args.source, site, stdlib, dynload]
    )
    for entry in site_entries(site, agent):
        if entry.is_dir():
            copy_tree(entry, lib_site / entry.name)
        elif keep(entry.name):
            shutil.copy2(entry, lib_site / entry.name)

    # The standard library modules all of that imports, and every codec.
    roots = module_names(lib_site) + module_names(stdlib, "encodings") + C_IMPORTS
    for path in sorted(stdlib_files(reached(roots, [lib_site, stdlib, dynload]), stdlib)):
        if path.is_relative_to(dynload):
            target = lib_python / "lib-dynload" / path.name
        else:
            target = lib_python / path.relative_to(stdlib)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)

    # The interpreter, its path file, the libraries, RUNPATHs.
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(sys.executable), dest / "bin" / PYTHON)
    (dest / "bin" / f"{PYTHON}._pth").write_text(
        f"../lib/{PYTHON}\n../lib/{PYTHON}/lib-dynload\n../lib/site-packages\n"
    )
    for so in lib_site.rglob("*.so"):  # the wheels ship their extension modules unstripped
        subprocess.run(["/usr/bin/strip", "--strip-unneeded", str(so)], check=True)
    copied = link_libraries(dest)
    check_libraries(dest)

    # .pyc files in place of the sources.
    compile_tree(dest / "lib")

    # The program and its second name.
    program = dest / "secrets-agent"
    text = (args.source / "docker" / "bundle.py").read_text()
    program.write_text(f"#!{dest / 'bin' / PYTHON} -I\n{text}")
    program.chmod(0o755)
    (dest / "docker-entrypoint").symlink_to("secrets-agent")
    agent_modules = module_names(args.source, "secrets_agent")
    check_imports(dest / "bin" / PYTHON, [n for n in agent_modules if not n.endswith("__main__")])
    print(f"make_bundle: libraries {sorted(copied)}", file=sys.stderr)


if __name__ == "__main__":
    main()
