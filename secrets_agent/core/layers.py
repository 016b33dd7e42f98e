"""Layered prefixes: ``PARAMETER_STORE_PREFIX=/kptboard/common,/kptboard/prod``. Pure.

A prefix variable holds one prefix or a comma-separated list (AWS names cannot hold a comma).
Each prefix is one *layer*, loaded with every rule of a single prefix. Within one source a
later layer overrides an earlier one for the same variable, on purpose; within one layer two
names that give one variable are still a collision (65), and so is a variable that both SSM and
Secrets Manager give, whatever the layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Item, Record
from secrets_agent.core.naming import check_allowed, describe, item_name, normalize_path

__all__ = [
    "Override",
    "layered",
    "prefix_entries",
    "records_from_layers",
    "same_prefix_key",
    "split_prefixes",
]


def prefix_entries(value: str) -> list[str]:
    """Every comma-separated entry of a prefix setting, stripped, blank ones kept (the settings
    check names them). The one rule of how a prefix setting splits into layers."""
    return [part.strip() for part in value.split(",")]


def split_prefixes(value: str | None) -> tuple[str, ...]:
    """The prefixes (layers) of a validated prefix setting, in order; () when unset."""
    if not value:
        return ()
    return tuple(entry for entry in prefix_entries(value) if entry)


def same_prefix_key(prefix: str) -> str:
    """Two prefixes with the same key load the same names (``/a`` and ``/a/`` in path mode)."""
    return normalize_path(prefix) if prefix.startswith("/") else prefix


def layered(*values: str | None) -> bool:
    """True when any of the prefix settings lists more than one prefix."""
    return any(len(split_prefixes(v)) > 1 for v in values)


@dataclass(frozen=True)
class Override:
    """A variable a later layer gives again: names only, never a value."""

    name: str
    source: str
    earlier: str  # the source name of the overridden parameter or secret (key)
    later: str
    earlier_layer: str
    later_layer: str

    def describe(self) -> str:
        return (
            f"{self.source} {self.later!r} (prefix {self.later_layer!r}) over "
            f"{self.earlier!r} (prefix {self.earlier_layer!r})"
        )


@dataclass(frozen=True)
class Layered:
    records: tuple[Record, ...]
    overrides: tuple[Override, ...]


def _record(name: str, item: Item) -> Record:
    return Record(
        name=name,
        value=item.value,
        source=item.source,
        source_name=item.source_name,
        version=item.version,
        layer=item.layer,
    )


def records_from_layers(
    items: Sequence[Item],
    *,
    order: Mapping[str, Sequence[str]],
    allow: tuple[str, ...] | None = None,
) -> Layered:
    """Name every prefix item and apply the layers; DataError as ``records_from_items`` does.

    ``order`` maps a source (``ssm``, ``secretsmanager``) to its prefixes in setting order;
    each item's ``layer`` is one of them. The checks run in the order of a single prefix: the
    name rule and protected names, then the allowlist (one error naming every name outside it),
    then collisions, the first by variable name.
    """
    named = [(item_name(item), item) for item in items]
    check_allowed(((n, f"{i.source} {i.source_name!r}") for n, i in named), allow)
    groups: dict[tuple[str, str | None], dict[str, list[Item]]] = {}
    for name, item in named:
        groups.setdefault((item.source, item.layer), {}).setdefault(name, []).append(item)
    collisions: dict[str, list[Item]] = {}  # name -> the items that collide on it
    for by_name in groups.values():
        for name, same in by_name.items():
            if len(same) > 1:
                collisions.setdefault(name, []).extend(same)
    chosen, overrides = _apply_layers(groups, order, collisions)
    sources = list(chosen)
    for i, source in enumerate(sources):
        for other in sources[i + 1 :]:
            for name in chosen[source].keys() & chosen[other].keys():
                collisions.setdefault(name, []).extend(
                    (chosen[source][name], chosen[other][name])
                )
    if collisions:
        raise _first_collision(items, collisions)
    records = tuple(
        _record(name, item) for effective in chosen.values() for name, item in effective.items()
    )
    return Layered(records=records, overrides=tuple(overrides))


def _apply_layers(
    groups: Mapping[tuple[str, str | None], Mapping[str, list[Item]]],
    order: Mapping[str, Sequence[str]],
    collisions: Mapping[str, list[Item]],
) -> tuple[dict[str, dict[str, Item]], list[Override]]:
    """Each source's items, a later layer's over an earlier's, and the overrides that made."""
    chosen: dict[str, dict[str, Item]] = {}
    overrides: list[Override] = []
    for source, layer in _ordered(groups, order):
        effective = chosen.setdefault(source, {})
        for name, same in groups[(source, layer)].items():
            before = effective.get(name)
            if before is not None and name not in collisions:
                overrides.append(
                    Override(
                        name=name,
                        source=source,
                        earlier=before.source_name,
                        later=same[0].source_name,
                        earlier_layer=before.layer or "",
                        later_layer=layer or "",
                    )
                )
            effective[name] = same[0]
    return chosen, overrides


def _first_collision(items: Sequence[Item], collisions: Mapping[str, list[Item]]) -> DataError:
    """The error for the first colliding name, its items in the order they were read."""
    name, same = sorted(collisions.items())[0]
    position = {id(item): i for i, item in enumerate(items)}
    involved = sorted({id(i): i for i in same}.values(), key=lambda i: position[id(i)])
    return DataError(
        f"{describe(involved)} all map to variable {name}",
        hint="rename one of them so that each maps to its own variable",
    )


def _ordered(
    groups: Iterable[tuple[str, str | None]], order: Mapping[str, Sequence[str]]
) -> list[tuple[str, str | None]]:
    """Sources in first-seen order; within one, layers in setting order."""
    keys = list(groups)
    sources = list(dict.fromkeys(source for source, _ in keys))

    def rank(key: tuple[str, str | None]) -> tuple[int, int]:
        source, layer = key
        layers = list(order.get(source, ()))
        position = layers.index(layer) if layer in layers else len(layers)
        return sources.index(source), position

    return sorted(keys, key=rank)
