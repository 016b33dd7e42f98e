"""Pure: merge the inherited environment with resolved records under the precedence rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from secrets_agent.core.errors import DataError
from secrets_agent.core.model import Record, Secret


@dataclass(frozen=True)
class Merged:
    env: dict[str, str]
    applied: tuple[Record, ...]  # what the agent added or replaced
    kept: tuple[Record, ...]  # prefix names whose inherited value won


def merge(
    inherited: Mapping[str, str],
    *,
    loaded: Sequence[Record],
    references: Sequence[Record],
    override: bool,
) -> Merged:
    """Build the command's environment.

    ``references`` always replace their own variable. A ``loaded`` (prefix) record replaces an
    inherited variable only with ``override``; else the inherited value is kept and reported.
    An inherited variable that is empty counts as unset (as the agent's own settings do): the
    loaded value replaces it either way. A variable that held a reference keeps its resolved
    value either way.
    """
    env = dict(inherited)
    applied: list[Record] = []
    kept: list[Record] = []
    ref_names = {r.name for r in references}
    for record in references:
        env[record.name] = record.value.reveal()
        applied.append(record)
    for record in loaded:
        if record.name in ref_names:
            continue  # the variable's own reference wins, with or without override
        if inherited.get(record.name) and not override:
            kept.append(
                Record(
                    name=record.name,
                    value=Secret(inherited[record.name]),
                    source="environment",
                    source_name=record.name,
                    version=None,
                )
            )
            continue
        env[record.name] = record.value.reveal()
        applied.append(record)
    for record in applied:
        _check_value(record)
    return Merged(env=env, applied=tuple(applied), kept=tuple(kept))


def _check_value(record: Record) -> None:
    """A value execve can pass: no NUL, and encodable (a JSON ``\\ud800`` escape is not)."""
    value = record.value.reveal()
    where = f"{record.source} {record.source_name!r} (variable {record.name})"
    if "\x00" in value:
        raise DataError(
            f"{where} holds a NUL byte",
            hint="an environment variable cannot hold NUL; store the value another way",
        )
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise DataError(
            f"{where} holds a lone UTF-16 surrogate, which no environment variable can hold",
            hint="store the value as valid Unicode text",
        ) from None
