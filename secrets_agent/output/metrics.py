"""CloudWatch embedded metric format (EMF) for the summary log lines.

With ``SECRETS_AGENT_METRICS=emf`` the agent's summary lines (the resolution's, each change
check's, each restart's) carry, besides their usual fields, a top-level ``_aws`` object and one
top-level member per metric and per dimension, as the EMF specification asks: CloudWatch Logs
(through the ``awslogs`` driver) turns them into metrics, with no agent and no
``cloudwatch:PutMetricData`` permission.

Dimensions are the task family (``TaskFamily``, from the ECS task metadata endpoint) when it is
known, else none. Never a secret's name in a dimension or a metric name, never a value: the
metric names are fixed, and the values are counts and seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from secrets_agent import __version__
from secrets_agent.core import aws_names
from secrets_agent.core.errors import ConfigError

if TYPE_CHECKING:
    from secrets_agent.core.errors import AgentError
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Level, Logger
    from secrets_agent.resolve.pipeline import Resolution


class Counted(Protocol):
    """What a failure's metrics read of the AWS clients (``secrets_agent.aws.clients.Clients``)."""

    @property
    def calls(self) -> int: ...

    @property
    def retries(self) -> int: ...


#: The units CloudWatch accepts for a metric (``MetricDatum.Unit``).
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)

#: Every metric the agent writes, with its unit. The names are fixed: nothing a parameter's
#: writer controls ever becomes a metric name or a dimension.
METRICS: dict[str, str] = {
    "SecretsResolved": "Count",
    "ResolutionSeconds": "Seconds",
    "AwsCalls": "Count",
    "Retries": "Count",
    "ResolutionFailures": "Count",
    "Checks": "Count",
    "FailedChecks": "Count",
    "ChangesSeen": "Count",
    "Restarts": "Count",
}
DIMENSION = "TaskFamily"
METADATA_TIMEOUT = 1.0


@dataclass(frozen=True)
class Emf:
    """What every metric line shares: the namespace and the dimensions (name -> value)."""

    namespace: str
    dimensions: tuple[tuple[str, str], ...] = ()

    def fields(
        self, values: Mapping[str, float], *, timestamp_ms: int | None = None
    ) -> dict[str, object]:
        """The top-level members that make a log line an EMF document for ``values``."""
        unknown = set(values) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metric {sorted(unknown)}")
        directive = {
            "Namespace": self.namespace,
            "Dimensions": [[name for name, _ in self.dimensions]],
            "Metrics": [{"Name": name, "Unit": METRICS[name]} for name in values],
        }
        out: dict[str, object] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
                "CloudWatchMetrics": [directive],
            }
        }
        out.update(dict(self.dimensions))
        out["AgentVersion"] = __version__  # a property: searchable, never a dimension
        out.update(values)
        return out

    def write(
        self, log: Logger, level: Level, event: str, values: Mapping[str, float], **fields: object
    ) -> None:
        """Log ``event`` with ``fields`` and the metrics, whatever the log level."""
        log.always(level, event, **fields, **self.fields(values))

    def failed(
        self, log: Logger, error: AgentError, *, clients: Counted | None, seconds: float
    ) -> None:
        """The metric line of a resolution that failed (before the one error line)."""
        calls = clients.calls if clients is not None else 0
        retries = clients.retries if clients is not None else 0
        metrics = {
            "SecretsResolved": 0,
            "ResolutionSeconds": round(seconds, 3),
            "AwsCalls": calls,
            "Retries": retries,
            "ResolutionFailures": 1,
        }
        self.write(
            log,
            "error",
            "secrets resolution failed",
            metrics,
            exit_code=error.exit_code,
            calls=calls,
            retries=retries,
        )


def check_settings(settings: Settings) -> None:
    """EMF needs JSON lines: refuse ``SECRETS_AGENT_LOG_FORMAT=text`` with it (78)."""
    if settings.metrics == "emf" and settings.log_format == "text":
        raise ConfigError(
            "SECRETS_AGENT_METRICS=emf needs JSON log lines, but SECRETS_AGENT_LOG_FORMAT=text",
            hint="unset SECRETS_AGENT_LOG_FORMAT (JSON is then used) or set it to json",
        )


def task_family(
    environ: Mapping[str, str], *, log: Logger, timeout: float = METADATA_TIMEOUT
) -> str | None:
    """The ECS task definition family from the task metadata endpoint (v4), or None.

    One GET (``secrets_agent.aws.ecs_service.task_metadata``), the whole exchange bounded by
    ``METADATA_TIMEOUT`` (and ``timeout``, SECRETS_AGENT_TIMEOUT), never through a proxy.
    Anything but a family name ECS could have given is ignored.
    """
    base = environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not base or not base.startswith(("http://", "https://")):
        return None
    from secrets_agent.aws.ecs_service import task_metadata

    try:
        task = task_metadata(environ, timeout=min(METADATA_TIMEOUT, timeout))
        family = task.get("Family") if task is not None else None
    except Exception as exc:  # noqa: BLE001 - no dimension is better than no command
        log.debug("task metadata not read; metrics without a dimension", error=type(exc).__name__)
        return None
    if not isinstance(family, str) or not aws_names.ECS_NAME.match(family):
        log.debug("task metadata has no usable Family; metrics without a dimension")
        return None
    return family


def from_settings(settings: Settings, environ: Mapping[str, str], *, log: Logger) -> Emf | None:
    """The EMF writer for ``settings``, or None when metrics are off."""
    if settings.metrics != "emf":
        return None
    family = task_family(environ, log=log, timeout=settings.timeout)
    dimensions = ((DIMENSION, family),) if family else ()
    return Emf(namespace=settings.metrics_namespace, dimensions=dimensions)


def log_resolution(result: Resolution, *, log: Logger, emf: Emf | None = None) -> None:
    if result.overrides:
        # Layered prefixes: a later prefix giving a variable again is on purpose; say which.
        log.info(
            "variables overridden by a later prefix",
            names=sorted({o.name for o in result.overrides}),
            overrides={o.name: o.describe() for o in result.overrides},
        )
    for record in result.kept:
        log.info(
            "variable kept from the environment",
            name=record.name,
            hint="set SECRETS_AGENT_OVERRIDE=true to replace it with the loaded value",
        )
    for record in result.applied:
        log.debug(
            "variable set",
            name=record.name,
            source=record.source,
            source_name=record.source_name,
            version=record.version,
            encrypted=record.encrypted,
        )
    by_source: dict[str, int] = {}
    for record in result.applied:
        by_source[record.source] = by_source.get(record.source, 0) + 1
    summary: dict[str, object] = {
        "count": len(result.applied),
        "kept": len(result.kept),
        "sources": by_source,
        "names": sorted(r.name for r in result.applied),
        "calls": result.calls,
        "retries": result.retries,
        "seconds": round(result.seconds, 3),
        "version": __version__,
    }
    if emf is None:
        log.info("secrets resolved", **summary)
        return
    metrics = {
        "SecretsResolved": len(result.applied),
        "ResolutionSeconds": round(result.seconds, 3),
        "AwsCalls": result.calls,
        "Retries": result.retries,
        "ResolutionFailures": 0,
    }
    emf.write(log, "info", "secrets resolved", metrics, **summary)
