"""What one change check costs in AWS calls, for ``secrets-agent check``.

Supervise mode's check (``ResolveWatcher.poll``) reads SSM exactly as the start did, page for
page; it asks Secrets Manager only for versions (``secrets_agent.aws.sm_versions``: ListSecrets
pages for
each prefix of the plan, one per layer, and one DescribeSecret per referenced secret that can
move) and reads its values only when one moved; it decrypts ``aesdk:`` values
(``kms:Decrypt``) only when something changed. So one check that finds nothing costs the
resolution's SSM calls plus those version calls; redeploy mode adds one
``ecs:DescribeServices`` (and one ``ecs:UpdateService`` for the whole service when something
changed).
"""

from __future__ import annotations

from collections.abc import Mapping

from secrets_agent.aws.sm_versions import version_check_calls
from secrets_agent.core.plan import Plan
from secrets_agent.core.settings import Settings
from secrets_agent.output.logs import Logger

#: Services whose calls a check without a change makes differently from the resolution.
CHECKED_OTHERWISE = ("kms:", "secretsmanager:")


def check_cost(
    resolution_calls: Mapping[str, int],
    *,
    plan: Plan,
    fingerprint: Mapping[str, tuple[str | None, str]],
    settings: Settings,
) -> dict[str, int]:
    """``service:Operation`` -> calls of one check that finds nothing changed."""
    calls = {
        op: n for op, n in resolution_calls.items() if n and not op.startswith(CHECKED_OTHERWISE)
    }
    calls.update(version_check_calls(plan, fingerprint))
    if settings.on_change == "redeploy":
        calls["ecs:DescribeServices"] = calls.get("ecs:DescribeServices", 0) + 1
    return dict(sorted(calls.items()))


def log_check_cost(calls: Mapping[str, int], *, settings: Settings, log: Logger) -> None:
    log.info(
        "one change check costs",
        calls=sum(calls.values()),
        operations=dict(calls),
        interval=settings.watch_interval or None,
        on_change=settings.on_change,
    )
