"""``SECRETS_AGENT_RESTART_SPREAD``: each task delays its restart on a changed secret by its own
stable offset in ``[0, spread)``, so that the tasks of a fleet do not all restart within one
check interval of each other.

The offset is a hash of the task's identity: its ECS task ARN (from the task metadata
endpoint) where there is one, else its host name (a container's host name is its id). It is
the same at every rotation for one task, and independent between tasks: for ``N`` tasks that
each take ``d`` seconds to restart, about ``N x d / spread`` are restarting at any one moment of
the window. (For a guarantee, not a spread, use ``SECRETS_AGENT_ON_CHANGE=redeploy``: ECS then
replaces tasks at the pace ``minimumHealthyPercent`` allows.)
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from secrets_agent.core.errors import AgentError
from secrets_agent.output.logs import Logger

if TYPE_CHECKING:
    import random

    from secrets_agent.core.settings import Settings

#: Checks are spread over ``interval x [1 - JITTER, 1 + JITTER]``, so that tasks started
#: together do not ask AWS in step.
JITTER = 0.15


def jittered(span: float, rng: random.Random) -> float:
    """``span`` give or take ``JITTER`` of it: the one home of the checks' jitter."""
    return span * rng.uniform(1 - JITTER, 1 + JITTER)


def offset(identity: str, spread: float) -> float:
    """A stable point of ``[0, spread)`` for ``identity`` (uniform over identities)."""
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * spread


def identity(environ: Mapping[str, str], *, timeout: float) -> tuple[str, str]:
    """(identity, what it is): the task ARN from the metadata endpoint, else the host name."""
    from secrets_agent.aws.ecs_service import task_metadata

    try:
        task = task_metadata(environ, timeout=timeout)
    except AgentError:
        task = None
    arn = task.get("TaskARN") if task else None
    if isinstance(arn, str) and arn.strip():
        return arn.strip(), "task ARN"
    return socket.gethostname(), "host name"


def restart_delay(
    environ: Mapping[str, str], *, spread: float, timeout: float, log: Logger
) -> float:
    """This task's restart delay for ``SECRETS_AGENT_RESTART_SPREAD=spread``."""
    if spread <= 0:
        return 0.0
    who, kind = identity(environ, timeout=timeout)
    delay = offset(who, spread)
    log.info(
        "restarts staggered",
        restart_delay=round(delay, 3),
        restart_spread=spread,
        offset_from=kind,
        identity=who,
    )
    return delay


def restart_delay_for(settings: Settings, environ: Mapping[str, str], log: Logger) -> float:
    """The restart delay the settings give (restart mode with SECRETS_AGENT_RESTART_SPREAD)."""
    if settings.on_change != "restart" or settings.restart_spread <= 0:
        return 0.0
    return restart_delay(environ, spread=settings.restart_spread, timeout=settings.timeout, log=log)
