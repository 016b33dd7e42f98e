"""Small frozen value types shared by every layer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

SourceKind = Literal["ssm", "secretsmanager", "aesdk", "environment"]


class Secret:
    """A secret value. ``str``/``repr``/format all give ``***``; only ``reveal`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A one-way digest, for change detection. Never logged."""
        return hashlib.sha256(self._value.encode("utf-8", "surrogatepass")).hexdigest()

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")


@dataclass(frozen=True)
class Item:
    """One value as a source returned it, before it is given a variable name.

    ``key`` is what follows the prefix (for a prefix load) or ``None`` (for a reference,
    whose variable name is already known). ``source_name`` is the parameter or secret name,
    plus ``:json_key`` for one key of a JSON secret.
    """

    source: SourceKind
    source_name: str
    value: Secret
    version: str | None
    key: str | None = None
    #: The prefix (of a comma-separated list) the item was loaded under; None for a reference.
    layer: str | None = None


@dataclass(frozen=True)
class Record:
    """One variable the agent sets or keeps, with where it came from."""

    name: str
    value: Secret
    source: SourceKind
    source_name: str
    version: str | None = None
    encrypted: bool = False
    layer: str | None = None
