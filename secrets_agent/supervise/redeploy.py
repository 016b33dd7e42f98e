"""``SECRETS_AGENT_ON_CHANGE=redeploy``: a changed secret asks ECS for one rolling deployment of
the task's own service, and the running command is kept; ECS replaces the tasks at the pace
the service allows, and each new task resolves the new values at start.

**One deployment per rotation.** Before asking, the check reads the service's deployments
(``DescribeServices``). When one was created at or after the change, another task already asked
(or a deploy is under way whose tasks resolve the new values): nothing is done. Otherwise the
task waits a random part of ``SETTLE`` seconds and reads them again, so that tasks that found
the change at the same moment mostly see the first one's deployment rather than all asking.
"The change" is when the source wrote the new version (SSM ``LastModifiedDate``, the Secrets
Manager version's ``CreatedDate``): the same instant for every task, whenever each one checks.
(The time a task *saw* the change would not do: a task that checks after the first deployment
began would see no deployment newer than its own check, and ask again.) When a variable's
source was removed, which has no time, the task's own start stands in: a deployment created
since then replaces it anyway.

**A polling cost that does not grow with the service.** Any one task that sees a change is
enough, so each task waits ``interval x running tasks`` (at most ``MAX_STRETCH`` times the
interval) between checks, its first check at a random point of that span: the tasks of a
service together check about once per interval. The running count is read with each check.

**Fail static.** A failed or denied ``DescribeServices``/``UpdateService`` is a failed check:
the command is kept, the supervisor logs one warning naming the action, and the change is
forgotten (``ResolveWatcher.rewind``) so that the next check finds it again and retries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from secrets_agent.aws.clients import Clients
from secrets_agent.aws.ecs_service import Service, ServiceState, describe, force_new_deployment
from secrets_agent.core.errors import AgentError, DataError
from secrets_agent.core.settings import Settings
from secrets_agent.output.logs import Logger
from secrets_agent.resolve.pipeline import Fetched, run_bounded
from secrets_agent.supervise.watch import ResolveWatcher

#: A task stretches its interval by the service's running task count, at most this many times.
MAX_STRETCH = 100
JITTER = 0.15
#: Before asking, a task that found no newer deployment waits a random part of this many
#: seconds and looks again: tasks that found one change at the same moment then mostly see the
#: first one's deployment instead of each asking (bench/redeploy_race.py measures it).
SETTLE = 5.0

Fingerprint = Mapping[str, tuple[str | None, str]]


def stretch(running: int) -> int:
    """How many intervals one task waits between checks for a service of ``running`` tasks."""
    return max(1, min(running, MAX_STRETCH))


def change_time(
    old: Fingerprint, new: Fingerprint, fetched: Fetched | None, *, fallback: float
) -> float:
    """When the change from ``old`` to ``new`` was written at its source (the latest of its
    parts); ``fallback`` when a part has no time (a removed parameter, a source without one)."""
    times = fetched.modified_times() if fetched is not None else {}
    latest: float | None = None
    for key in set(old) | set(new):
        if old.get(key) == new.get(key):
            continue
        stamp = times.get(key) if key in new else None
        if stamp is None:
            return fallback
        latest = stamp if latest is None else max(latest, stamp)
    return fallback if latest is None else latest


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="milliseconds")


def request_once(
    clients: Clients, service: Service, changed_at: float, *, pause: float
) -> tuple[bool, float | None, ServiceState]:
    """Ask for a deployment unless one created at or after ``changed_at`` exists, looking twice
    (before and after ``pause`` seconds). (asked?, that deployment's createdAt, the service)."""
    state = describe(clients, service)
    for attempt in range(2):
        newer = [t for t in state.deployments if t >= changed_at]
        if newer:
            return False, max(newer), state
        if attempt == 0:
            time.sleep(pause)
            state = describe(clients, service)
    return True, force_new_deployment(clients, service, state.arn), state


class RedeployWatcher:
    """A ``Watcher`` for the supervisor: ``poll`` never returns an environment (nothing is
    restarted here); a change becomes one ``UpdateService`` for the whole service."""

    def __init__(
        self,
        inner: ResolveWatcher,
        *,
        service: Service,
        state: ServiceState,
        clients: Clients,
        log: Logger,
        timeout: float,
        env: Mapping[str, str],
    ) -> None:
        self._inner = inner
        self._env = dict(env)  # the command's environment, which redeploy mode never changes
        self.service = service
        self.arn = state.arn
        self.running = state.running
        self._clients = clients
        self._log = log
        self._timeout = timeout
        self._started = time.time()
        self._first = True
        self._rng = random.Random()  # noqa: S311 - spreading calls, not cryptography

    # -- pacing (secrets_agent.supervise.supervisor.PacesChecks)
    # ------------------------------------------------
    def next_delay(self, interval: float, rng: random.Random) -> float:
        span = interval * stretch(self.running)
        if self._first:
            # Tasks of one deployment start together: a random phase spreads their checks.
            self._first = False
            return span * rng.uniform(0.0, 1.0)
        return span * rng.uniform(1 - JITTER, 1 + JITTER)

    # -- the check ----------------------------------------------------------------------------
    def poll(self) -> Mapping[str, str] | None:
        before = dict(self._inner.fingerprint)
        new_env = self._inner.poll()
        if new_env is None:
            state: ServiceState = run_bounded(
                lambda: describe(self._clients, self.service),
                timeout=self._timeout,
                what="reading the ECS service",
                clients=self._clients,
            )
            self.running = state.running
            return None
        try:
            self._refuse_dropped(new_env)
            self._on_change(before)
        except AgentError:
            self._inner.rewind(before)  # seen again, and acted on, at the next check
            raise
        accept = getattr(self._inner, "commit", None)  # a watcher that waits to be told
        if callable(accept):
            accept()
        return None

    def commit(self) -> None:
        """Nothing to do: ``poll`` accepts what it acted on itself."""

    def _refuse_dropped(self, new_env: Mapping[str, str]) -> None:
        """A change that would start tasks without a variable the command has (a parameter
        deleted or renamed by mistake) asks for nothing: new tasks would boot without it."""
        dropped = sorted(set(self._env) - set(new_env))
        if dropped:
            raise DataError(
                "the change would leave out " + ", ".join(dropped) + "; no deployment asked",
                hint="restore the parameter or secret; a secret removed on purpose goes away "
                "with the next deploy",
            )

    def _on_change(self, before: Fingerprint) -> None:
        fetched = self._inner.last_fetched
        after = fetched.fingerprint() if fetched is not None else self._inner.fingerprint
        changed_at = change_time(before, after, fetched, fallback=self._started)
        pause = self._rng.uniform(0.0, min(SETTLE, self._timeout / 3))
        requested, deployment, state = run_bounded(
            lambda: request_once(self._clients, self.service, changed_at, pause=pause),
            timeout=self._timeout,
            what="asking ECS for a new deployment",
            clients=self._clients,
        )
        self.running = state.running
        self.arn = state.arn
        self._log.info(
            "secrets changed; new deployment requested"
            if requested
            else "secrets changed; a deployment after the change exists already",
            changes=list(self._inner.last_changes),
            service=state.arn,
            changed_at=_iso(changed_at),
            deployment_created=_iso(deployment),
            running=state.running,
            command="kept",
        )


def start_redeploy(
    inner: ResolveWatcher,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    env: Mapping[str, str],
    clients: Clients,
    log: Logger,
) -> RedeployWatcher:
    """Find the service and read it once, before the command starts: a missing setting or
    service is 78 now, not at the first rotation; a denied call is 77."""
    from secrets_agent.aws.ecs_service import find_service

    def find() -> tuple[Service, ServiceState]:
        service = find_service(settings, environ, clients)
        return service, describe(clients, service)

    found: tuple[Service, ServiceState] = run_bounded(
        find, timeout=settings.timeout, what="finding the ECS service", clients=clients
    )
    service, state = found
    log.info(
        "changed secrets will redeploy the service",
        service=state.arn,
        found_by=service.found_by,
        running=state.running,
        check_every=round(settings.watch_interval * stretch(state.running), 3),
    )
    return RedeployWatcher(
        inner,
        service=service,
        state=state,
        clients=clients,
        log=log,
        timeout=settings.timeout,
        env=env,
    )
