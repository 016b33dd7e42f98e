"""The environment a setting takes effect in: a setting set without what it needs is 78, so a
test of one setting's grammar sets it in its context."""

from __future__ import annotations

from secrets_agent.core.settings import SETTINGS

_CONTEXT: dict[str, dict[str, str]] = {
    "": {},
    "supervise": {"SECRETS_AGENT_WATCH_INTERVAL": "30"},
    "restart": {"SECRETS_AGENT_WATCH_INTERVAL": "30"},
    "redeploy": {"SECRETS_AGENT_WATCH_INTERVAL": "30", "SECRETS_AGENT_ON_CHANGE": "redeploy"},
    "emf": {"SECRETS_AGENT_METRICS": "emf"},
    "prefix": {"PARAMETER_STORE_PREFIX": "/a"},
    "source": {"PARAMETER_STORE_PREFIX": "/a"},
    "files": {"PARAMETER_STORE_PREFIX": "/a"},
}


def context(variable: str) -> dict[str, str]:
    """What ``variable`` needs to take effect (its row's ``needs``), as variables."""
    (setting,) = [s for s in SETTINGS if s.variable == variable]
    return dict(_CONTEXT[setting.needs])
