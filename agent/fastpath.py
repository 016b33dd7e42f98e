"""The start-up decision, with nothing but ``str`` methods: is there anything for the agent
to do? Imported before everything else, so it imports nothing (not even ``re``)."""

from __future__ import annotations

from collections.abc import Mapping

_REFERENCE_STARTS = ("ssm:", "secretsmanager:", "aesdk:")
_ARN_SERVICES = ("ssm", "secretsmanager")


def looks_like_reference(value: str) -> bool:
    """Could ``value`` be a reference? (``agent.references`` parses it for real.)"""
    if value.startswith(_REFERENCE_STARTS):
        return True
    if value.startswith("arn:"):
        parts = value.split(":", 3)
        if len(parts) < 4 or parts[2] not in _ARN_SERVICES:
            return False
        # Only an SSM *parameter* ARN is a reference; a document, automation definition or
        # any other SSM resource is an ordinary value (Secrets Manager ARNs name secrets only).
        return parts[2] != "ssm" or ":parameter/" in parts[3] or parts[3].endswith(":parameter")
    return False


def needs_agent(environ: Mapping[str, str]) -> bool:
    """True when there is anything to resolve or any agent setting to honour."""
    for key, value in environ.items():
        if not value:
            continue
        if key in ("PARAMETER_STORE_PREFIX", "SECRETS_MANAGER_PREFIX"):
            return True  # a blank one too: the settings refuse it (78) rather than ignore it
        if key.startswith("SECRETS_AGENT_"):
            return True
        if looks_like_reference(value):
            return True
    return False
