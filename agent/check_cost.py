"""What one change check costs in AWS calls, for ``secrets-agent check``.

Supervise mode's check (``ResolveWatcher.poll``) reads exactly what the start read: the same
``fetch`` of the same plan, page for page. It decrypts ``aesdk:`` values (``kms:Decrypt``) only
when something changed. So the calls of one check are the calls the resolution just made, by
operation, without ``kms:Decrypt``; redeploy mode adds one ``ecs:DescribeServices`` per check
(and one ``ecs:UpdateService`` for the whole service when something changed).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.logs import Logger
from agent.settings import Settings

#: Calls the resolution makes that a check without a change does not.
ONLY_ON_CHANGE = frozenset({"kms:Decrypt"})


def check_cost(resolution_calls: Mapping[str, int], *, settings: Settings) -> dict[str, int]:
    """``service:Operation`` -> calls of one check that finds nothing changed."""
    calls = {op: n for op, n in resolution_calls.items() if op not in ONLY_ON_CHANGE and n}
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
