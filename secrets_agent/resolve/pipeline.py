"""The resolution pipeline: plan -> fetch (I/O, concurrent) -> finalize (pure + aesdk) -> env.

``fetch`` and ``finalize`` are separate so that supervise mode can compare what the services
return (by version and value digest) without decrypting or rebuilding anything.

AWS-free: the sources (``secrets_agent.core.sources``) and the decrypt function are handed in
by the caller (the AWS ones are ``secrets_agent.aws.sources`` and ``secrets_agent.aws.envelope``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from secrets_agent.core.environment import merge
from secrets_agent.core.fanout import run_all
from secrets_agent.core.layers import Override, records_from_layers
from secrets_agent.core.model import Item, Record, Secret
from secrets_agent.core.plan import Plan, check_required
from secrets_agent.core.references import AesdkRef, SecretRef, SsmRef
from secrets_agent.core.settings import Settings
from secrets_agent.core.sources import Decrypt, Source, Sources
from secrets_agent.process.fastpath import AESDK_PREFIX, is_aesdk
from secrets_agent.resolve.fingerprint import fingerprint_of


@dataclass(frozen=True)
class Fetched:
    prefix_items: tuple[Item, ...]
    ref_items: Mapping[str, Item]

    def fingerprint(self) -> dict[str, tuple[str | None, str]]:
        """key -> (version, value digest), for change detection (``fingerprint.py``'s keys)."""
        return fingerprint_of(self.prefix_items, self.ref_items)


@dataclass(frozen=True)
class Resolution:
    env: dict[str, str]
    applied: tuple[Record, ...]
    kept: tuple[Record, ...]
    calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    fingerprint: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()


def fetch(plan: Plan, sources: Sources) -> Fetched:
    """Ask every source for its part, all concurrently; fail on the first error.

    One task per layer of each prefix setting (its items carry their layer), one per source
    for references.
    """
    tasks: list[Callable[[], list[Item] | dict[str, Item]]] = []
    for source, prefixes in (
        (sources.ssm, plan.ssm_prefixes),
        (sources.secrets_manager, plan.sm_prefixes),
    ):
        tasks.extend(functools.partial(_layer, source, prefix) for prefix in prefixes)
    ssm_refs = {v: r for v, r in plan.refs.items() if isinstance(r, SsmRef)}
    sm_refs = {v: r for v, r in plan.refs.items() if isinstance(r, SecretRef)}
    if ssm_refs:
        tasks.append(functools.partial(sources.ssm.read, ssm_refs))
    if sm_refs:
        tasks.append(functools.partial(sources.secrets_manager.read, sm_refs))
    prefix_items: list[Item] = []
    ref_items: dict[str, Item] = {}
    for var, ref in plan.refs.items():
        if isinstance(ref, AesdkRef):
            ref_items[var] = Item(
                source="aesdk",
                source_name=var,
                value=Secret(AESDK_PREFIX + ref.ciphertext),
                version=None,
            )
    # One thread per task; a source may fan out itself.
    for result in run_all(tasks, max_workers=max(1, len(tasks))):
        if isinstance(result, dict):
            ref_items.update(result)
        else:
            prefix_items.extend(result)
    return Fetched(prefix_items=tuple(prefix_items), ref_items=ref_items)


def _layer(source: Source, prefix: str) -> list[Item]:
    return [replace(item, layer=prefix) for item in source.load(prefix)]


def finalize(
    plan: Plan,
    fetched: Fetched,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    decrypt: Decrypt,
) -> Resolution:
    """Name, check, decrypt and merge; all or nothing."""
    layers = records_from_layers(
        fetched.prefix_items,
        order={
            "ssm": plan.ssm_prefixes,
            "secretsmanager": plan.sm_prefixes,
        },
        allow=settings.allow,
    )
    loaded = list(layers.records)
    references = [
        Record(
            name=var,
            value=item.value,
            source=item.source,
            source_name=item.source_name,
            version=item.version,
        )
        for var, item in sorted(fetched.ref_items.items())
    ]
    if any(is_aesdk(r.value.reveal()) for r in (*loaded, *references)):
        # One call, so that every aesdk: value decrypts concurrently.
        decrypted = decrypt([*loaded, *references])
        loaded, references = decrypted[: len(loaded)], decrypted[len(loaded) :]
    merged = merge(environ, loaded=loaded, references=references, override=settings.override)
    check_required(merged.env, settings, plan.refs)  # 66: in supervise mode, the old command stays
    return Resolution(
        env=merged.env,
        applied=merged.applied,
        kept=merged.kept,
        fingerprint=fetched.fingerprint(),
        overrides=layers.overrides,
    )


def resolve(
    plan: Plan,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    sources: Sources,
    decrypt: Decrypt,
) -> Resolution:
    """``fetch`` then ``finalize``, timed (the caller adds the AWS calls and retries it counts)."""
    started = time.monotonic()
    fetched = fetch(plan, sources)
    result = finalize(plan, fetched, settings=settings, environ=environ, decrypt=decrypt)
    return replace(result, seconds=time.monotonic() - started)


__all__ = [
    "Fetched",
    "Resolution",
    "fetch",
    "finalize",
    "resolve",
]
