"""AWS Secrets Manager: a name-prefix load (BatchGetSecretValue pages) and references.

I/O and value shaping only; naming and merging happen elsewhere. Every read is of the
AWSCURRENT stage unless a reference pins a stage or a version.

Why BatchGetSecretValue with a name filter: it lists and reads up to 20 secrets per call, the
fewest calls the API allows. Two safety nets keep it correct:

- the name filter is a plain prefix match, so the ``/`` boundary is also checked here;
- an entry whose ``VersionStages`` lacks AWSCURRENT (moto returns the old version after a stage
  move) is read again with ``GetSecretValue(VersionStage="AWSCURRENT")``. Real AWS returns the
  current version, so this costs nothing there.

When the whole batch call fails with InvalidRequestException or ResourceNotFoundException (moto
does so when one secret under the prefix is marked for deletion or has no value; AWS reports
such a secret in ``Errors``), or an ``Errors`` entry is InvalidRequestException, the load falls
back to ListSecrets, which leaves deleted secrets out, plus one GetSecretValue per secret, so
that the failure, if any, names the one secret at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from secrets_agent.aws.errors import the_region
from secrets_agent.aws.paging import pages
from secrets_agent.aws.secrets_manager_errors import code_of, entry_error, map_error
from secrets_agent.aws.secrets_manager_values import expand, scalar_of, text_of
from secrets_agent.core import aws_names
from secrets_agent.core.errors import DataError, NotFoundError
from secrets_agent.core.fanout import map_all
from secrets_agent.core.model import Item, Secret
from secrets_agent.core.naming import key_under_secret_prefix as remainder
from secrets_agent.output.logs import Logger

if TYPE_CHECKING:
    from secrets_agent.core.references import SecretRef

CURRENT = "AWSCURRENT"
BATCH = 20
LIST_PAGE = 100

T = TypeVar("T")
R = TypeVar("R")


class _Retry(Exception):
    """The batch path cannot tell a deleted secret from a broken one: take the slow path."""


def filter_value(prefix: str) -> str:
    """The server-side name filter: the prefix with its boundary, so that it cannot overmatch."""
    (start,) = aws_names.starts_under(prefix, aws_names.SM_PREFIX_SEPARATORS)
    return start


def _parallel(fn: Callable[[T], R], args: Sequence[T]) -> list[R]:
    return map_all(fn, args)


def _get(
    client: Any,
    secret_id: str,
    *,
    stage: str | None = CURRENT,
    version_id: str | None = None,
    subject: str,
) -> Mapping[str, Any]:
    kwargs: dict[str, str] = {"SecretId": secret_id}
    if stage:
        kwargs["VersionStage"] = stage
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        response: Mapping[str, Any] = client.get_secret_value(**kwargs)
    except Exception as exc:
        raise map_error(
            exc,
            action="secretsmanager:GetSecretValue",
            subject=subject,
            client=client,
            secret_id=secret_id,
        ) from exc
    return response


def _pages(
    client: Any,
    operation: str,
    kwargs: dict[str, Any],
    *,
    action: str,
    subject: str,
    retry_on: frozenset[str] = frozenset(),
) -> Iterator[Mapping[str, Any]]:
    """Every page, until NextToken is absent; empty pages are normal."""
    from botocore.exceptions import ClientError

    def call(request: dict[str, Any]) -> Mapping[str, Any]:
        try:
            page: Mapping[str, Any] = getattr(client, operation)(**request)
        except ClientError as exc:
            if code_of(exc)[0] in retry_on:
                raise _Retry from exc
            raise map_error(exc, action=action, subject=subject) from exc
        except Exception as exc:
            raise map_error(exc, action=action, subject=subject) from exc
        return page

    return pages(call, kwargs, what=f"{action} on {subject}")


def _batch_entries(client: Any, prefix: str, *, log: Logger) -> tuple[list[Mapping[str, Any]], int]:
    """(entries under the prefix, calls) through BatchGetSecretValue pages; _Retry to fall back."""
    subject = f"the secrets under {prefix!r}"
    entries: dict[str, Mapping[str, Any]] = {}
    stale: list[Mapping[str, Any]] = []
    calls = 0
    for page in _pages(
        client,
        "batch_get_secret_value",
        {"Filters": [{"Key": "name", "Values": [filter_value(prefix)]}], "MaxResults": BATCH},
        action="secretsmanager:BatchGetSecretValue",
        subject=subject,
        retry_on=frozenset({"InvalidRequestException", "ResourceNotFoundException"}),
    ):
        calls += 1
        for error in page.get("Errors") or []:
            secret = str(error.get("SecretId", ""))
            name = secret_name_of(secret)
            if remainder(prefix, name) is None and remainder(prefix, secret) is None:
                log.debug("secret outside the prefix skipped", name=name, prefix=prefix)
                continue
            if error.get("ErrorCode") == "InvalidRequestException":
                raise _Retry
            raise entry_error(error, f"secret {name!r}")
        for entry in page.get("SecretValues") or []:
            name = str(entry["Name"])
            if remainder(prefix, name) is None:
                log.debug("secret outside the prefix skipped", name=name, prefix=prefix)
                continue
            entries[name] = entry
            if CURRENT not in (entry.get("VersionStages") or []):
                stale.append(entry)
    if stale:
        log.debug(
            "batch read a non-current version; reading AWSCURRENT",
            names=[str(e["Name"]) for e in stale],
        )
        fresh = _parallel(
            lambda e: _get(client, str(e.get("ARN") or e["Name"]), subject=f"secret {e['Name']!r}"),
            stale,
        )
        calls += len(fresh)
        for entry in fresh:
            entries[str(entry["Name"])] = entry
    return [entries[n] for n in sorted(entries)], calls


def _list_entries(client: Any, prefix: str) -> tuple[list[Mapping[str, Any]], int]:
    """(entries, calls) through ListSecrets (which leaves out deleted secrets) + GetSecretValue."""
    listed: dict[str, str] = {}
    calls = 0
    for page in _pages(
        client,
        "list_secrets",
        {"Filters": [{"Key": "name", "Values": [filter_value(prefix)]}], "MaxResults": LIST_PAGE},
        action="secretsmanager:ListSecrets",
        subject=f"the secrets under {prefix!r}",
    ):
        calls += 1
        for meta in page.get("SecretList") or []:
            name = str(meta["Name"])
            if remainder(prefix, name) is not None and not meta.get("DeletedDate"):
                listed[name] = str(meta.get("ARN") or name)
    names = sorted(listed)
    entries = _parallel(
        lambda n: _get(client, listed[n], subject=f"secret {n!r} (AWSCURRENT)"), names
    )
    return entries, calls + len(names)


def secret_name_of(secret_id: str) -> str:
    """A secret name from a name or an ARN (``...:secret:NAME-XXXXXX``)."""
    if secret_id.startswith("arn:") and ":secret:" in secret_id:
        name = secret_id.split(":secret:", 1)[1]
        return aws_names.SECRET_ARN_SUFFIX.sub("", name)
    return secret_id


def load_prefix(client: Any, prefix: str, *, log: Logger) -> list[Item]:
    """Every secret under ``prefix`` (boundary ``/``), AWSCURRENT, JSON objects expanded."""
    import time

    started = time.monotonic()
    entries, calls, path = _entries(client, prefix, log=log)
    if not entries:
        raise NotFoundError(
            f"no secret exists under Secrets Manager prefix {prefix!r}",
            hint="check SECRETS_MANAGER_PREFIX (names are case-sensitive), "
            f"{the_region(client)} and the account",
        )
    items = [item for entry in entries for item in _items_of(entry, prefix, log=log)]
    if not items:
        # Every secret under the prefix is an empty JSON object: nothing is found, as when no
        # secret exists (a command started with none of its variables is not a success).
        raise NotFoundError(
            f"the secrets under Secrets Manager prefix {prefix!r} give no variable: "
            f"{len(entries)} secret(s), each an empty JSON object",
            hint="put the keys in the secret, or check SECRETS_MANAGER_PREFIX",
        )
    log.info(
        "secrets manager prefix loaded",
        prefix=prefix,
        count=len(items),
        secrets=[str(e["Name"]) for e in entries],
        versions={str(e["Name"]): e.get("VersionId") for e in entries},
        calls=calls,
        via=path,
        seconds=round(time.monotonic() - started, 3),
    )
    return items


def _entries(
    client: Any, prefix: str, *, log: Logger
) -> tuple[list[Mapping[str, Any]], int, str]:
    """(entries, calls, the way read): BatchGetSecretValue, or listing when it refuses one."""
    try:
        entries, calls = _batch_entries(client, prefix, log=log)
        return entries, calls, "BatchGetSecretValue"
    except _Retry:
        log.info(
            "secrets manager batch read refused a secret; listing instead",
            prefix=prefix,
            reason="a secret marked for deletion or without a value?",
        )
        entries, calls = _list_entries(client, prefix)
        return entries, calls, "ListSecrets+GetSecretValue"


def _items_of(entry: Mapping[str, Any], prefix: str, *, log: Logger) -> list[Item]:
    """The variables of one secret under ``prefix`` (a JSON object expanded)."""
    name = str(entry["Name"])
    key = remainder(prefix, name)
    if not key:
        raise DataError(
            f"secret {name!r} leaves an empty name after prefix {prefix!r}",
            hint="rename or delete it",
        )
    version = entry.get("VersionId")
    text = text_of(entry, f"secret {name!r}")
    found = expand(text, name=name, key=key, log=log)
    log.debug("secret read", name=name, version=version, variables=len(found))
    return [
        Item(
            source="secretsmanager",
            source_name=source_name,
            value=Secret(value),
            version=None if version is None else str(version),
            key=item_key,
        )
        for item_key, source_name, value in found
    ]


def describe_ref(ref: SecretRef) -> str:
    """The reference as written (fields only; never a value)."""
    fields = [ref.json_key or "", ref.stage or "", ref.version_id or ""]
    while fields and not fields[-1]:
        fields.pop()
    body = ":".join([ref.secret_id, *fields])
    return body if ref.secret_id.startswith("arn:") else "secretsmanager:" + body


def resolve_refs(
    client_for: Callable[[str | None], Any], refs: Mapping[str, SecretRef], *, log: Logger
) -> dict[str, Item]:
    """Variable -> Item (key None). One GetSecretValue per distinct (region, id, stage, version)."""
    groups: dict[tuple[str | None, str, str | None, str | None], list[str]] = {}
    for var in sorted(refs):
        ref = refs[var]
        version_id = ref.version_id or None
        stage = ref.stage or (None if version_id else CURRENT)
        groups.setdefault((ref.region or None, ref.secret_id, stage, version_id), []).append(var)

    def read(group: tuple[str | None, str, str | None, str | None]) -> Mapping[str, Any]:
        region, secret_id, stage, version_id = group
        names = ", ".join(f"{describe_ref(refs[v])} (variable {v})" for v in groups[group])
        return _get(
            client_for(region), secret_id, stage=stage, version_id=version_id, subject=names
        )

    keys = list(groups)
    responses = dict(zip(keys, _parallel(read, keys), strict=True))
    out: dict[str, Item] = {}
    for group, response in responses.items():
        name = str(response.get("Name") or group[1])
        version = response.get("VersionId")
        log.debug(
            "secret read", name=name, version=version, stage=group[2], variables=groups[group]
        )
        for var in groups[group]:
            ref = refs[var]
            origin = f"{describe_ref(ref)} (variable {var})"
            text = text_of(response, origin)
            source_name = name
            if ref.json_key:
                text = scalar_of(text, ref.json_key, origin=origin)
                source_name = f"{name}:{ref.json_key}"
            out[var] = Item(
                source="secretsmanager",
                source_name=source_name,
                value=Secret(text),
                version=None if version is None else str(version),
            )
    return out
