"""Pure name rules: source key -> variable name, prefix boundaries, protected names, collisions.

No I/O, no AWS, no ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from secrets_agent.core.aws_names import SM_PREFIX_SEPARATORS, SSM_NAME_PREFIX_SEPARATORS, key_under
from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Item, Record
from secrets_agent.core.protected import VALID_NAME, compile_patterns, is_protected

__all__ = [
    "check_allowed",
    "check_settable",
    "is_protected",
    "item_name",
    "records_from_items",
    "variable_name",
]

_RUN = re.compile(r"[^A-Za-z0-9]+")



def variable_name(key: str) -> str:
    """Apply the name rule to what follows a prefix; raise DataError for a name it cannot be."""
    name = _RUN.sub("_", key).strip("_").upper()
    if not name:
        raise DataError(
            f"{key!r} gives an empty variable name",
            hint="rename it so that a letter follows the prefix",
        )
    if name[0].isdigit():
        raise DataError(
            f"{key!r} gives variable name {name!r}, which starts with a digit",
            hint="rename it so that it starts with a letter",
        )
    return name


def check_settable(name: str, *, origin: str) -> None:
    """Raise DataError when ``name`` is not a valid or settable variable."""
    if not VALID_NAME.match(name):
        raise DataError(f"{origin} gives invalid variable name {name!r}")
    if is_protected(name):
        raise DataError(
            f"{origin} would set protected variable {name}",
            hint="the agent never sets a name that changes how programs start (PATH, LD_*, "
            "SHELLOPTS, GIT_*, RUBYOPT, AWS_*, ...: docs/threat-model.md); rename the secret",
        )


def check_allowed(named: Iterable[tuple[str, str]], allow: tuple[str, ...] | None) -> None:
    """Raise one DataError naming every ``(variable, origin)`` outside ``allow``.

    ``allow`` is ``SECRETS_AGENT_ALLOW``'s patterns (``*`` matches any run), None when unset.
    """
    if allow is None:
        return
    regex = compile_patterns(allow)
    outside = sorted({(n, origin) for n, origin in named if regex.fullmatch(n) is None})
    if outside:
        listed = ", ".join(f"{n} ({origin})" for n, origin in outside)
        raise DataError(
            f"SECRETS_AGENT_ALLOW does not allow variable {listed}",
            hint="add the names to SECRETS_AGENT_ALLOW, or rename or delete what sets them",
        )


def normalize_path(path: str) -> str:
    """``/a/b/`` -> ``/a/b``; ``/`` stays ``/``."""
    stripped = path.rstrip("/")
    return stripped or "/"


def key_under_path(path: str, name: str) -> str | None:
    """The key of parameter ``name`` below ``path`` (trailing ``/`` optional), or None."""
    path = normalize_path(path)
    base = "/" if path == "/" else path + "/"
    if not name.startswith(base):
        return None
    return name[len(base) :]


def key_under_name_prefix(prefix: str, name: str) -> str | None:
    """The key of ``name`` under a flat name prefix (boundary ``.`` or ``/``), or None."""
    return key_under(prefix, name, SSM_NAME_PREFIX_SEPARATORS)


def key_under_secret_prefix(prefix: str, name: str) -> str | None:
    """The key of a Secrets Manager secret ``name`` under ``prefix`` (boundary ``/``), or None."""
    return key_under(prefix, name, SM_PREFIX_SEPARATORS)


def records_from_items(
    items: Sequence[Item], *, allow: tuple[str, ...] | None = None
) -> list[Record]:
    """Name every prefix item; raise DataError on invalid, protected, not allowed or colliding
    names."""
    by_name: dict[str, list[Item]] = {}
    for item in items:
        by_name.setdefault(item_name(item), []).append(item)
    check_allowed(
        ((n, f"{i.source} {i.source_name!r}") for n, its in by_name.items() for i in its), allow
    )
    collisions = {n: its for n, its in by_name.items() if len(its) > 1}
    if collisions:
        name, its = sorted(collisions.items())[0]
        raise DataError(
            f"{describe(its)} all map to variable {name}",
            hint="rename one of them so that each maps to its own variable",
        )
    return [
        Record(
            name=name,
            value=its[0].value,
            source=its[0].source,
            source_name=its[0].source_name,
            version=its[0].version,
        )
        for name, its in by_name.items()
    ]


def item_name(item: Item) -> str:
    """The variable a prefix item sets; DataError for an empty, invalid or protected name."""
    if item.key is None:
        raise ValueError("item_name takes prefix items only")
    if item.key.strip("/") == "" or _RUN.sub("", item.key) == "":
        raise DataError(
            f"{item.source} {item.source_name!r} leaves an empty name after the prefix",
            hint="rename or delete it",
        )
    try:
        name = variable_name(item.key)
    except DataError as exc:
        origin = f"{item.source} {item.source_name!r}"
        raise DataError(f"{origin}: {exc.message}", hint=exc.hint) from exc
    check_settable(name, origin=f"{item.source} {item.source_name!r}")
    return name


def describe(items: Iterable[Item]) -> str:
    return ", ".join(f"{i.source} {i.source_name!r}" for i in items)
