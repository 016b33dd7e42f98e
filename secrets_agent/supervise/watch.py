"""Supervise mode's change check: fetch again, compare versions and value digests, and say
what changed. The supervisor asks ``poll`` every interval and ``commit``s what it accepted."""

from __future__ import annotations

from collections.abc import Mapping

from secrets_agent.aws.bounded import run_bounded
from secrets_agent.aws.clients import Clients
from secrets_agent.aws.sources import AwsSources, decrypter
from secrets_agent.core.plan import Plan
from secrets_agent.core.references import SecretRef
from secrets_agent.core.settings import Settings
from secrets_agent.core.sources import Sources
from secrets_agent.output.logs import Logger
from secrets_agent.resolve import pipeline as resolve
from secrets_agent.resolve.fingerprint import is_secrets_manager
from secrets_agent.resolve.pipeline import Fetched
from secrets_agent.supervise.supervisor import Change


class ResolveWatcher:
    """Supervise mode's change check: fetch again, compare versions and value digests.

    ``poll`` is bounded by SECRETS_AGENT_TIMEOUT. It returns a ``Change`` (the new environment
    and what changed) when something changed, None when nothing did, and raises AgentError when
    the check or the new environment fails (the running command must then be kept). A change
    counts as seen only once the supervisor calls ``commit``: a change it refused (a partial or
    too large environment) is reported again by the next poll.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        settings: Settings,
        environ: Mapping[str, str],
        clients: Clients,
        log: Logger,
        fingerprint: dict[str, tuple[str | None, str]],
        sources: Sources | None = None,
    ) -> None:
        """``sources``: where the values are read; AWS's (``AwsSources``) unless handed in."""
        self._plan = plan
        self._settings = settings
        self._environ = dict(environ)
        self._clients = clients
        self._log = log
        self._sources = sources if sources is not None else AwsSources(clients, log)
        self._decrypt = decrypter(
            clients, log, key_arns=settings.kms_key_arns, timeout=settings.timeout
        )
        self._fingerprint = fingerprint
        self._pending: dict[str, tuple[str | None, str]] | None = None

    @property
    def fingerprint(self) -> dict[str, tuple[str | None, str]]:
        """What the last accepted check (or the start) read: versions and value digests."""
        return self._fingerprint

    def rewind(self, fingerprint: dict[str, tuple[str | None, str]]) -> None:
        """Forget a change that was not acted on, so that the next poll reports it again."""
        self._fingerprint = fingerprint

    def _fetch_for_check(self) -> Fetched | None:
        """What a check reads; None when it can tell nothing changed. Secrets Manager is asked
        for versions first (``secrets_agent.aws.sm_versions``) and its values read only when one
        moved."""
        from secrets_agent.aws.sm_versions import secrets_manager_unchanged, without_secrets_manager

        plan = self._plan
        if plan.sm_prefixes or any(isinstance(r, SecretRef) for r in plan.refs.values()):
            if secrets_manager_unchanged(plan, self._clients, self._fingerprint):
                rest = resolve.fetch(without_secrets_manager(plan), self._sources)
                old = self._fingerprint
                kept = {k: v for k, v in old.items() if is_secrets_manager(k)}
                if {**kept, **rest.fingerprint()} == old:
                    return None
        return resolve.fetch(plan, self._sources)

    def poll(self) -> Change | None:
        self._pending = None
        if self._plan.empty:
            return None

        Found = tuple[dict[str, tuple[str | None, str]], Mapping[str, str], list[str]]

        def check() -> Found | None:
            fetched = self._fetch_for_check()
            if fetched is None:
                return None
            new = fetched.fingerprint()
            if new == self._fingerprint:
                return None
            changes = _describe_changes(self._fingerprint, new)
            result = resolve.finalize(
                self._plan,
                fetched,
                settings=self._settings,
                environ=self._environ,
                decrypt=self._decrypt,
            )
            return new, result.env, changes

        # Kept here, not in the check's thread: a check that outlives the timeout keeps
        # running, and must not mark a change as seen that nobody acted on.
        found: Found | None = run_bounded(
            check,
            timeout=self._settings.timeout,
            what="checking for changed secrets",
            clients=self._clients,
        )
        if found is None:
            return None
        # The supervisor logs the changes.
        self._pending, env, changes = found
        return Change(env=env, changes=tuple(changes))

    def commit(self) -> None:
        """The supervisor took the last poll's environment: later polls compare against it."""
        if self._pending is not None:
            self._fingerprint, self._pending = self._pending, None


def _describe_changes(
    old: Mapping[str, tuple[str | None, str]], new: Mapping[str, tuple[str | None, str]]
) -> list[str]:
    changes: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            changes.append(f"{key} removed")
        elif key not in old:
            changes.append(f"{key} added (version {new[key][0]})")
        elif old[key] != new[key]:
            changes.append(f"{key} version {old[key][0]} -> {new[key][0]}")
    return changes
