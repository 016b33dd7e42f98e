"""What the agent will read, and from where: the settings and the inherited environment alone,
no I/O. ``exec``, ``env`` and ``check`` fetch this plan; ``iam-policy`` grants exactly it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from secrets_agent.core.errors import NotFoundError
from secrets_agent.core.layers import split_prefixes
from secrets_agent.core.naming import check_allowed, check_settable
from secrets_agent.core.references import Ref, find_references
from secrets_agent.core.settings import Settings


@dataclass(frozen=True)
class Plan:
    """The prefixes of each source, one per layer in setting order (a setting may list
    several, split once by ``secrets_agent.core.layers.split_prefixes``), and the references to
    resolve."""

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


def check_required(env: Mapping[str, str], settings: Settings, refs: Mapping[str, Ref]) -> None:
    """SECRETS_AGENT_REQUIRE: each listed variable is set and non-empty in ``env`` (the command's
    environment before SECRETS_AGENT_FILES takes its variables out), whatever its source; else
    66 naming the missing ones and where they were looked for."""
    missing = [name for name in settings.require if not env.get(name)]
    if not missing:
        return
    searched = [
        f"{variable}={value}"
        for variable, value in (
            ("PARAMETER_STORE_PREFIX", settings.parameter_store_prefix),
            ("SECRETS_MANAGER_PREFIX", settings.secrets_manager_prefix),
        )
        if value
    ]
    if refs:
        searched.append(f"{len(refs)} reference(s)")
    where = "; searched " + ", ".join(searched) if searched else "; no prefix or reference is set"
    raise NotFoundError(
        f"SECRETS_AGENT_REQUIRE: {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} missing or empty after resolution{where}",
        hint="create the parameter or secret under the prefix (or fix the prefix: one level too "
        "broad or too narrow names other variables), or set it in the task definition",
    )
