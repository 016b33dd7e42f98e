"""What the agent will read, and from where: the settings and the inherited environment alone,
no I/O. ``exec``, ``env`` and ``check`` fetch this plan; ``iam-policy`` grants exactly it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.layers import split_prefixes
from agent.naming import check_allowed, check_settable
from agent.references import Ref, find_references
from agent.settings import Settings


@dataclass(frozen=True)
class Plan:
    """The prefixes of each source, one per layer in setting order (a setting may list
    several, split once by ``agent.layers.split_prefixes``), and the references to resolve."""

    ssm_prefixes: tuple[str, ...]
    sm_prefixes: tuple[str, ...]
    refs: Mapping[str, Ref]

    @property
    def empty(self) -> bool:
        return not (self.ssm_prefixes or self.sm_prefixes or self.refs)


def make_plan(settings: Settings, environ: Mapping[str, str]) -> Plan:
    """The plan; a reference whose variable may not be set is refused here, before any call."""
    refs = find_references(environ)
    for var in refs:
        check_settable(var, origin=f"the reference in variable {var}")
    check_allowed(((var, "a reference") for var in refs), settings.allow)
    return Plan(
        ssm_prefixes=split_prefixes(settings.parameter_store_prefix),
        sm_prefixes=split_prefixes(settings.secrets_manager_prefix),
        refs=refs,
    )
