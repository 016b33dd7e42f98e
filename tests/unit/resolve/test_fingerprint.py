"""The fingerprint's key grammar: what fingerprint_of builds, the readers read back."""

from __future__ import annotations

from secrets_agent.core.model import Item, Secret
from secrets_agent.resolve.fingerprint import (
    fingerprint_of,
    is_secrets_manager,
    secrets_manager_prefix_versions,
    secrets_manager_reference_version,
)


def test_the_readers_read_back_what_fingerprint_of_builds() -> None:
    prefix = (
        Item("secretsmanager", "app/db:password", Secret("a"), "v1", key="db_password"),
        Item("ssm", "/app/token", Secret("b"), "3", key="token"),
    )
    refs = {
        "DB": Item("secretsmanager", "app/db", Secret("c"), "v2"),
        "TOKEN": Item("ssm", "/app/token", Secret("b"), "3"),
    }
    fingerprint = fingerprint_of(prefix, refs)
    assert len(fingerprint) == 4  # the parameter read twice is two entries
    assert secrets_manager_prefix_versions(fingerprint) == {"app/db": "v1"}
    assert secrets_manager_reference_version(fingerprint, "DB") == "v2"
    assert secrets_manager_reference_version(fingerprint, "TOKEN") is None
    assert sorted(is_secrets_manager(k) for k in fingerprint) == [False, False, True, True]
