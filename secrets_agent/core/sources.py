"""The one small protocol every place the agent reads secrets from implements.

``resolve.fetch`` asks a source to ``load`` a prefix and to ``read`` references; it never
dispatches by hand. The AWS sources (``secrets_agent.aws.sources``) are the real ones; tests pass
fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from secrets_agent.core.model import Item
from secrets_agent.core.references import SecretRef, SsmRef


class Source(Protocol):
    def load(self, prefix: str) -> list[Item]:
        """Every item under ``prefix`` (one layer), each with its key after the prefix."""
        ...

    def read(self, refs: Mapping[str, SsmRef | SecretRef]) -> dict[str, Item]:
        """The item each variable's reference names."""
        ...


class Sources(Protocol):
    @property
    def ssm(self) -> Source: ...

    @property
    def secrets_manager(self) -> Source: ...
