"""What a read saw, for change detection: the one grammar of a fingerprint's keys.

A fingerprint maps a key to ``(version, value digest)``. A prefix item's key is
``SOURCE:NAME`` (``NAME:JSON_KEY`` for one key of a JSON secret; a secret name holds no ``:``);
a reference's key names its variable too, ``SOURCE:NAME (variable VAR)``, so that one parameter
or secret read twice (by a prefix and a pinned reference, or latest and pinned) gives two
entries, not one that hides the other's changes. Built here, and read only through the
functions below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from secrets_agent.core.model import Item

Fingerprint = Mapping[str, tuple[str | None, str]]
_SM = "secretsmanager:"
_VARIABLE = " (variable "


def prefix_key(item: Item) -> str:
    return f"{item.source}:{item.source_name}"


def reference_key(item: Item, var: str) -> str:
    return f"{item.source}:{item.source_name}{_VARIABLE}{var})"


def fingerprint_of(
    prefix_items: Iterable[Item], ref_items: Mapping[str, Item]
) -> dict[str, tuple[str | None, str]]:
    """key -> (version, value digest) for every item read."""
    out: dict[str, tuple[str | None, str]] = {}
    for item in prefix_items:
        out[prefix_key(item)] = (item.version, item.value.fingerprint())
    for var, item in ref_items.items():
        out[reference_key(item, var)] = (item.version, item.value.fingerprint())
    return out


def is_secrets_manager(key: str) -> bool:
    """Did Secrets Manager give this entry (by a prefix or a reference)?"""
    return key.startswith(_SM)


def secrets_manager_prefix_versions(fingerprint: Fingerprint) -> dict[str, str | None]:
    """secret name -> version, from the Secrets Manager prefix entries."""
    out: dict[str, str | None] = {}
    for key, (version, _) in fingerprint.items():
        if key.startswith(_SM) and _VARIABLE not in key:
            out[key[len(_SM) :].split(":", 1)[0]] = version
    return out


def secrets_manager_reference_version(fingerprint: Fingerprint, var: str) -> str | None:
    """The version of the secret that variable ``var``'s reference read; None if none."""
    suffix = f"{_VARIABLE}{var})"
    for key, (version, _) in fingerprint.items():
        if key.startswith(_SM) and key.endswith(suffix):
            return version
    return None
