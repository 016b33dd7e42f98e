"""Supervise mode's wiring (restart, exit, redeploy): the first resolution in a check process,
the watcher, the secret files, and the ``Supervisor`` (or the ``HandoffSupervisor`` with
SECRETS_AGENT_LISTEN) built from the settings. ``secrets_agent.run.exec_mode`` calls
:func:`supervise_isolated`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secrets_agent.core.plan import Plan
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.logs import Logger
    from secrets_agent.output.metrics import Emf
    from secrets_agent.process.secret_files import Target
    from secrets_agent.supervise.supervisor import Watcher


def supervise_isolated(
    command: list[str],
    environ: dict[str, str],
    settings: Settings,
    log: Logger,
    files: tuple[Target, ...],
    emf: Emf | None,
    *,
    plan: Plan,
    stoppable: Callable[[], AbstractContextManager[None]],
) -> int:
    """Supervise mode (restart, exit, redeploy): the AWS SDK never loads in this process; the
    first resolution and every check run in a process of their own
    (``secrets_agent.supervise.isolated``). ``plan``: the checked plan; ``stoppable``: a stop
    signal ends the first resolution at once while it lasts (both ``secrets_agent.run``'s)."""
    from secrets_agent.supervise.isolated import claim, kill_running, run_child

    env: dict[str, str] = environ
    watcher: Watcher | None = None
    hooks: dict[str, Any] = {"on_reaped": claim, "on_stop": kill_running}
    if not plan.empty:
        with stoppable():
            answer = run_child(
                "start",
                settings=settings,
                environ=environ,
                log=log,
                emf=emf,
                what="resolving secrets",
            )
        env = answer["env"] if answer["env"] is not None else environ
        watcher = _isolated_watcher(answer, env, environ, settings, log, hooks)
    prepare = None
    if files:
        from secrets_agent.process.secret_files import FilesWatcher, preparer, split_env

        split_env(env, files)  # 66 before anything starts
        prepare = preparer(files, log=log)
        if watcher is not None and settings.on_change != "redeploy":
            # Redeploy mode never rewrites files (nothing restarts): only restart and exit.
            watcher = FilesWatcher(watcher, files)
    return _supervise(
        command, env, settings, environ, watcher, log, prepare=prepare, emf=emf, **hooks
    )


def _isolated_watcher(
    answer: dict[str, Any],
    env: Mapping[str, str],
    environ: Mapping[str, str],
    settings: Settings,
    log: Logger,
    hooks: dict[str, Any],
) -> Watcher:
    """The watcher for the first resolution's answer. Redeploy mode's ECS state (the service,
    when the values were resolved, the pacing, in ``hooks``) stays here as plain data, and
    its checks ask ECS."""
    import time

    from secrets_agent.supervise.isolated import IsolatedWatcher

    redeploy = None
    if "redeploy" in answer:
        # Taken after the resolution ended: a later time can only make a task ask once
        # more, never skip a deployment (secrets_agent.supervise.redeploy).
        redeploy = {
            "service": answer["redeploy"]["service"],
            "resolved_at": time.time(),
            "names": sorted(env),
        }
        hooks.update(stretch=answer["redeploy"]["stretch"], spread_first=True)
    return IsolatedWatcher(
        settings=settings,
        environ=environ,
        log=log,
        fingerprint=answer["fingerprint"],
        redeploy=redeploy,
    )


def _supervise(
    command: list[str],
    env: Mapping[str, str],
    settings: Settings,
    environ: Mapping[str, str],
    watcher: Any,
    log: Logger,
    *,
    prepare: Any,
    emf: Emf | None,
    **hooks: Any,
) -> int:
    """Supervise ``command`` with the settings' interval, stop timeout and restart spread;
    ``hooks``: the ``Supervisor``'s process hooks and pacing."""
    from secrets_agent.supervise.stagger import restart_delay_for
    from secrets_agent.supervise.supervisor import Supervisor

    make: Callable[..., Supervisor] = Supervisor
    if settings.listen:
        from secrets_agent.supervise.handoff import listening

        make = listening(settings)
    return make(
        command,
        env,
        interval=settings.watch_interval,
        # Redeploy mode's watcher never hands back an environment: nothing restarts.
        on_change="exit" if settings.on_change == "exit" else "restart",
        stop_timeout=settings.stop_timeout,
        watcher=watcher,
        log=log,
        prepare=prepare,
        emf=emf,
        restart_delay=(restart_delay_for(settings, environ, log) if watcher is not None else 0.0),
        **hooks,
    ).run()
