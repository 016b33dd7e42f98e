"""Cheaper change checks for Secrets Manager: ask which version each stage points at, and read
values only when one moved.

Each prefix (layer) is listed with ``ListSecrets`` under its own name filter (100 secrets a
page, no values; the same call and grant BatchGetSecretValue's name filter needs), through the
one paging loop; a reference's secret is described with
``DescribeSecret`` (its stages' version ids, no value; 40,000 a second per account and region,
where ``GetSecretValue`` allows 10,000). A reference pinned to a version id never moves and is
not asked about. When every version is the one the last read saw, the check reads no Secrets
Manager value at all; otherwise it reads everything as the start did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from secrets_agent.aws.clients import Clients
from secrets_agent.aws.paging import pages
from secrets_agent.aws.secrets_manager import CURRENT, LIST_PAGE, filter_value
from secrets_agent.aws.secrets_manager_errors import map_error
from secrets_agent.core.naming import key_under_secret_prefix
from secrets_agent.core.plan import Plan
from secrets_agent.core.references import SecretRef
from secrets_agent.resolve.fingerprint import (
    Fingerprint,
    secrets_manager_prefix_versions,
    secrets_manager_reference_version,
)


def _current(stages: Mapping[str, Any], stage: str) -> str | None:
    for version, labels in stages.items():
        if isinstance(labels, list) and stage in labels:
            return str(version)
    return None


def _ref_groups(refs: Mapping[str, SecretRef]) -> dict[tuple[str | None, str, str], list[str]]:
    """(region, secret id, stage) -> variables, for the references that can move."""
    groups: dict[tuple[str | None, str, str], list[str]] = {}
    for var in sorted(refs):
        ref = refs[var]
        if ref.version_id:
            continue  # a version id names one immutable version
        groups.setdefault((ref.region or None, ref.secret_id, ref.stage or CURRENT), []).append(var)
    return groups


def _listed(client: Any, prefix: str) -> dict[str, str | None]:
    """secret name -> AWSCURRENT version, for every secret under one prefix (layer)."""
    action = "secretsmanager:ListSecrets"
    subject = f"the secrets under {prefix!r}"

    def call(request: dict[str, Any]) -> Mapping[str, Any]:
        try:
            page: Mapping[str, Any] = client.list_secrets(**request)
        except Exception as exc:
            raise map_error(exc, action=action, subject=subject) from exc
        return page

    request = {
        "Filters": [{"Key": "name", "Values": [filter_value(prefix)]}],
        "MaxResults": LIST_PAGE,
    }
    listed: dict[str, str | None] = {}
    for page in pages(call, request, what=f"{action} on {subject}"):
        for meta in page.get("SecretList") or []:
            name = str(meta.get("Name"))
            if key_under_secret_prefix(prefix, name) is None or meta.get("DeletedDate"):
                continue
            listed[name] = _current(meta.get("SecretVersionsToStages") or {}, CURRENT)
    return listed


def secrets_manager_unchanged(plan: Plan, clients: Clients, fingerprint: Fingerprint) -> bool:
    """True when every Secrets Manager secret ``plan`` reads is at the version ``fingerprint``
    holds. Only version metadata is read: one ListSecrets listing per prefix (layer), one
    DescribeSecret per referenced secret that can move."""
    if plan.sm_prefixes:
        client = clients.get("secretsmanager")
        listed: dict[str, str | None] = {}
        for prefix in plan.sm_prefixes:
            listed.update(_listed(client, prefix))
        if listed != secrets_manager_prefix_versions(fingerprint):
            return False
    sm_refs = {v: r for v, r in plan.refs.items() if isinstance(r, SecretRef)}
    for (region, secret_id, stage), variables in _ref_groups(sm_refs).items():
        client = clients.get("secretsmanager", region)
        try:
            described = client.describe_secret(SecretId=secret_id)
        except Exception as exc:
            raise map_error(
                exc, action="secretsmanager:DescribeSecret", subject=f"secret {secret_id!r}"
            ) from exc
        now = _current(described.get("VersionIdsToStages") or {}, stage)
        if any(secrets_manager_reference_version(fingerprint, var) != now for var in variables):
            return False
    return True


def without_secrets_manager(plan: Plan) -> Plan:
    """The plan's SSM and aesdk: parts only."""
    return Plan(
        ssm_prefixes=plan.ssm_prefixes,
        sm_prefixes=(),
        refs={v: r for v, r in plan.refs.items() if not isinstance(r, SecretRef)},
    )


def version_check_calls(plan: Plan, fingerprint: Fingerprint) -> dict[str, int]:
    """The Secrets Manager calls of one check that finds no version moved: the ListSecrets
    pages of each prefix (layer), at least one each, and the DescribeSecret calls."""
    calls: dict[str, int] = {}
    if plan.sm_prefixes:
        names = secrets_manager_prefix_versions(fingerprint)
        pages_listed = 0
        for prefix in plan.sm_prefixes:
            under = sum(key_under_secret_prefix(prefix, name) is not None for name in names)
            pages_listed += max(1, math.ceil(under / LIST_PAGE))
        calls["secretsmanager:ListSecrets"] = pages_listed
    sm_refs = {v: r for v, r in plan.refs.items() if isinstance(r, SecretRef)}
    groups = len(_ref_groups(sm_refs))
    if groups:
        calls["secretsmanager:DescribeSecret"] = groups
    return calls
