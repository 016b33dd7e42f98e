"""The one small protocol every place the agent reads secrets from implements, and the decrypt
function the pipeline is handed.

``secrets_agent.resolve.pipeline.fetch`` asks a source to ``load`` a prefix and to ``read``
references; it never dispatches by hand. The AWS sources (``secrets_agent.aws.sources``) and
decrypt function (``secrets_agent.aws.sources.decrypter``) are the real ones; tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from secrets_agent.core.model import Item, Record
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


#: Records in, the same records out with every ``aesdk:`` value decrypted; all or nothing.
Decrypt = Callable[[Sequence[Record]], list[Record]]
