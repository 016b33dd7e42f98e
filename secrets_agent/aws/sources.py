"""SSM Parameter Store and Secrets Manager as ``secrets_agent.core.sources.Source``s, over shared
clients, and the Encryption SDK as the pipeline's decrypt function: what the caller hands to
``secrets_agent.resolve.pipeline``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from secrets_agent.aws.clients import Clients
from secrets_agent.core.model import Item, Record
from secrets_agent.core.references import SecretRef, SsmRef
from secrets_agent.output.logs import Logger


class SsmSource:
    def __init__(self, clients: Clients, log: Logger) -> None:
        self._clients = clients
        self._log = log

    def load(self, prefix: str) -> list[Item]:
        from secrets_agent.aws import ssm

        client = self._clients.get("ssm")
        if prefix.startswith("/"):
            return ssm.load_path(client, prefix, log=self._log)
        return ssm.load_name_prefix(client, prefix, log=self._log)

    def read(self, refs: Mapping[str, Any]) -> dict[str, Item]:
        """References by the region that reads them (an ARN's region picks the client)."""
        from secrets_agent.aws import ssm
        from secrets_agent.core.fanout import run_all

        by_region: dict[str | None, dict[str, SsmRef]] = {}
        for var, ref in refs.items():
            by_region.setdefault(ref.region, {})[var] = ref
        found: dict[str, Item] = {}
        for part in run_all(
            [
                lambda region=region, group=group: ssm.resolve_refs(  # type: ignore[misc]
                    self._clients.get("ssm", region), group
                )
                for region, group in by_region.items()
            ]
        ):
            found.update(part)
        return found


class SecretsManagerSource:
    def __init__(self, clients: Clients, log: Logger) -> None:
        self._clients = clients
        self._log = log

    def load(self, prefix: str) -> list[Item]:
        from secrets_agent.aws import secrets_manager

        items: list[Item] = secrets_manager.load_prefix(
            self._clients.get("secretsmanager"), prefix, log=self._log
        )
        return items

    def read(self, refs: Mapping[str, Any]) -> dict[str, Item]:
        from secrets_agent.aws import secrets_manager

        secret_refs: dict[str, SecretRef] = dict(refs)
        found: dict[str, Item] = secrets_manager.resolve_refs(
            lambda region: self._clients.get("secretsmanager", region), secret_refs, log=self._log
        )
        return found


class AwsSources:
    def __init__(self, clients: Clients, log: Logger) -> None:
        self.ssm = SsmSource(clients, log)
        self.secrets_manager = SecretsManagerSource(clients, log)


def decrypter(
    clients: Clients, log: Logger, *, key_arns: Sequence[str], timeout: float | None = None
) -> Callable[[Sequence[Record]], list[Record]]:
    """The pipeline's decrypt function (``secrets_agent.core.sources.Decrypt``): the Encryption
    SDK over ``clients``' botocore session, both brought in only when a value is decrypted."""

    def decrypt(records: Sequence[Record]) -> list[Record]:
        from secrets_agent.aws import envelope

        return envelope.decrypt_records(
            records,
            key_arns=key_arns,
            botocore_session=clients.session(),
            log=log,
            timeout=timeout,
        )

    return decrypt
