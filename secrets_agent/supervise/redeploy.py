"""``SECRETS_AGENT_ON_CHANGE=redeploy``: a changed secret asks ECS for one rolling deployment of
the task's own service, and the running command is kept; ECS replaces the tasks at the pace
the service allows, and each new task resolves the new values at start.

**One deployment per rotation.** The question a task answers is "will a deployment replace me,
so that tasks that resolve the values now current take my place?". A task runs what it resolved
at its start; a deployment created after that start replaces it, and that deployment's own
tasks either started after the change (they resolved the new values) or started before it and
find the change themselves, at their own checks, with no deployment newer than them. So before
asking, the check reads the service's deployments (``DescribeServices``): when the newest was
created more than ``CLOCK_MARGIN`` seconds after this task resolved its values, nothing is done.
Otherwise the task waits a random part of ``SETTLE`` seconds and reads them again, so that
tasks that found the change at the same moment mostly see the first one's deployment rather
than all asking.

No time of the source enters the decision: a version's creation time says nothing about when it
became current (``AWSCURRENT`` or an SSM label moved back to an older version, or the rotation
Lambda's ``finishSecret`` moving ``AWSCURRENT`` to a version created before an unrelated
deploy). The two clocks compared are ECS's (``createdAt``) and the task's own; the task's time
is taken after its resolution ended, and ``CLOCK_MARGIN`` covers a task clock up to that far
behind ECS's: within it, a clock error can only make a task ask once more, never skip a
deployment the fleet needs.

``UpdateService`` is sent once per decision, by a client without SDK retries: an answer lost on
the way back would otherwise be sent again, one deployment per attempt. The failed check is
the retry: the change is forgotten, and the next check looks (the lost request's deployment is
there, newer than the task) before it asks.

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

from secrets_agent.aws.bounded import run_bounded
from secrets_agent.aws.clients import Clients
from secrets_agent.aws.ecs_service import Service, ServiceState, describe, force_new_deployment
from secrets_agent.core.errors import AgentError, DataError, ServiceError
from secrets_agent.core.settings import Settings
from secrets_agent.output.logs import Logger
from secrets_agent.supervise.supervisor import Change
from secrets_agent.supervise.watch import ResolveWatcher

#: A task stretches its interval by the service's running task count, at most this many times.
MAX_STRETCH = 100
#: Before asking, a task that found no newer deployment waits a random part of this many
#: seconds and looks again: tasks that found one change at the same moment then mostly see the
#: first one's deployment instead of each asking (bench/redeploy_race.py measures it).
SETTLE = 5.0
#: A deployment replaces this task when it was created more than this many seconds after the
#: task resolved its values (ECS's clock against the task's: a task clock running behind ECS's
#: by less than this never makes a task skip a deployment it needs).
CLOCK_MARGIN = 5.0


def stretch(running: int) -> int:
    """How many intervals one task waits between checks for a service of ``running`` tasks."""
    return max(1, min(running, MAX_STRETCH))


def replacing(deployments: tuple[float, ...], resolved_at: float) -> float | None:
    """The ``createdAt`` of the newest deployment when it replaces a task that resolved its
    values at ``resolved_at`` (created more than ``CLOCK_MARGIN`` later), else None."""
    newest = max(deployments, default=None)
    if newest is None or newest <= resolved_at + CLOCK_MARGIN:
        return None
    return newest


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="milliseconds")


def request_once(
    clients: Clients,
    service: Service,
    resolved_at: float,
    *,
    pause: float,
    deadline: float | None = None,
) -> tuple[bool, float | None, ServiceState]:
    """Ask for a deployment unless one replaces a task that resolved its values at
    ``resolved_at``, looking twice (before and after ``pause`` seconds); ``UpdateService`` is
    sent at most once, and not after ``deadline`` (``time.monotonic``): a decision its caller
    has given up on asks for nothing behind the next check's back.
    (asked?, that deployment's createdAt, the service)."""
    state = describe(clients, service)
    for attempt in range(2):
        newer = replacing(state.deployments, resolved_at)
        if newer is not None:
            return False, newer, state
        if attempt == 0:
            time.sleep(pause)
            state = describe(clients, service)
    if deadline is not None and time.monotonic() > deadline:
        raise ServiceError(
            "the look before ecs:UpdateService outlived SECRETS_AGENT_TIMEOUT; nothing asked",
            hint="the next check looks again",
        )
    return True, force_new_deployment(clients, service, state.arn), state


class RedeployWatcher:
    """A ``Watcher`` for the supervisor: ``poll`` never returns an environment (nothing is
    restarted here); a change becomes one ``UpdateService`` for the whole service. Its
    ``Change`` carries the pacing: ``stretch`` of the running count read with each check."""

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
        resolved_at: float | None = None,
    ) -> None:
        self._inner = inner
        self._env = dict(env)  # the command's environment, which redeploy mode never changes
        self.service = service
        self.arn = state.arn
        self.running = state.running
        self._clients = clients
        self._log = log
        self._timeout = timeout
        # When the command's values were resolved, at the latest: they are never re-read here.
        self.resolved_at = time.time() if resolved_at is None else resolved_at
        self._rng = random.Random()  # noqa: S311 - spreading calls, not cryptography
        # UpdateService's own client (no SDK retries), made now: made at the first ask, its
        # creation would widen the gap between the last look and the ask, in which another
        # task's look misses this task's deployment.
        clients.get("ecs", service.region, attempts=1)

    @property
    def stretch(self) -> int:
        """How many intervals to wait between checks, for the running count last read."""
        return stretch(self.running)

    # -- the check ----------------------------------------------------------------------------
    def poll(self) -> Change:
        before = dict(self._inner.fingerprint)
        change = self._inner.poll()
        if change is None or change.env is None:
            state: ServiceState = run_bounded(
                lambda: describe(self._clients, self.service),
                timeout=self._timeout,
                what="reading the ECS service",
                clients=self._clients,
            )
            self.running = state.running
            return Change(stretch=stretch(self.running))
        try:
            self._refuse_dropped(change.env)
            self._on_change(change.changes)
        except AgentError:
            self._inner.rewind(before)  # seen again, and acted on, at the next check
            raise
        self._inner.commit()
        return Change(changes=change.changes, stretch=stretch(self.running))

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

    def _on_change(self, changes: tuple[str, ...]) -> None:
        pause = self._rng.uniform(0.0, min(SETTLE, self._timeout / 3))
        # Room for UpdateService itself (one attempt: connect and read timeouts, 5 + 10 s).
        deadline = time.monotonic() + self._timeout - min(15.0, self._timeout / 2)
        requested, deployment, state = run_bounded(
            lambda: request_once(
                self._clients, self.service, self.resolved_at, pause=pause, deadline=deadline
            ),
            timeout=self._timeout,
            what="asking ECS for a new deployment",
            clients=self._clients,
        )
        self.running = state.running
        self.arn = state.arn
        self._log.info(
            "secrets changed; new deployment requested"
            if requested
            else "secrets changed; a newer deployment replaces this task already",
            changes=list(changes),
            service=state.arn,
            resolved_at=_iso(self.resolved_at),
            deployment_created=_iso(deployment),
            running=state.running,
            command="kept",
        )


def find_at_start(
    *, settings: Settings, environ: Mapping[str, str], clients: Clients, log: Logger
) -> tuple[Service, ServiceState]:
    """The service and its state, read before the command starts (a missing setting or
    service is 78 now, not at the first rotation; a denied call is 77);
    logs where a change will go."""
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
    return service, state
