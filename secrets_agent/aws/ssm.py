"""SSM Parameter Store: by path, by flat name prefix, and by names (references).

I/O only; naming and merging happen elsewhere. Pagination always runs until no NextToken
(pages may be empty); GetParameters goes in batches of at most 10 and checks InvalidParameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from secrets_agent.aws.errors import map_aws_error, the_region
from secrets_agent.aws.paging import pages
from secrets_agent.core import aws_names
from secrets_agent.core.errors import DataError, NotFoundError
from secrets_agent.core.fanout import map_all
from secrets_agent.core.model import Item, Secret
from secrets_agent.core.naming import key_under_name_prefix, key_under_path, normalize_path
from secrets_agent.core.references import SsmRef
from secrets_agent.output.logs import Logger

BATCH = 10


def _item(param: Mapping[str, Any], *, key: str | None) -> Item:
    value = param.get("Value")
    if not isinstance(value, str):
        raise DataError(f"SSM parameter {param.get('Name')!r} has no value")
    version = param.get("Version")
    return Item(
        source="ssm",
        source_name=str(param["Name"]),
        value=Secret(value),
        version=None if version is None else str(version),
        key=key,
    )


def _pages(client: Any, operation: str, kwargs: dict[str, Any], *, resource: str) -> Iterator[Any]:
    action = f"ssm:{_action(operation)}"

    def call(request: dict[str, Any]) -> Mapping[str, Any]:
        try:
            page: Mapping[str, Any] = getattr(client, operation)(**request)
        except Exception as exc:
            raise map_aws_error(exc, action=action, resource=resource) from exc
        return page

    return pages(call, kwargs, what=f"{action} on {resource}")


def _action(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def load_path(client: Any, path: str, *, log: Logger) -> list[Item]:
    """Every parameter below ``path``, recursively, decrypted."""
    path = normalize_path(path)
    items: list[Item] = []
    pages = 0
    for page in _pages(
        client,
        "get_parameters_by_path",
        {"Path": path, "Recursive": True, "WithDecryption": True, "MaxResults": 10},
        resource=f"SSM path {path!r}",
    ):
        pages += 1
        for param in page.get("Parameters", []):
            key = key_under_path(path, str(param["Name"]))
            if key is None:
                log.debug("parameter outside the path skipped", name=param["Name"], path=path)
                continue
            items.append(_item(param, key=key))
    if not items:
        raise NotFoundError(
            f"no SSM parameter exists under path {path!r}",
            hint=f"check PARAMETER_STORE_PREFIX, {the_region(client)} and the account",
        )
    log.debug("ssm path read", path=path, pages=pages, count=len(items))
    return items


def load_name_prefix(client: Any, prefix: str, *, log: Logger) -> list[Item]:
    """Every parameter named ``prefix.`` or ``prefix/`` plus anything, decrypted."""
    names: list[str] = []
    for page in _pages(
        client,
        "describe_parameters",
        {
            "ParameterFilters": [{"Key": "Name", "Option": "BeginsWith", "Values": [prefix]}],
            "MaxResults": 50,
        },
        resource=f"SSM name prefix {prefix!r}",
    ):
        for meta in page.get("Parameters", []):
            name = str(meta["Name"])
            if key_under_name_prefix(prefix, name) is not None:
                names.append(name)
    if not names:
        raise NotFoundError(
            f"no SSM parameter is named {prefix!r} followed by '.' or '/'",
            hint=f"check PARAMETER_STORE_PREFIX, {the_region(client)} and the account",
        )
    found = get_by_names(client, sorted(set(names)))
    items = []
    for name in sorted(found):
        param = found[name]
        items.append(_item(param, key=key_under_name_prefix(prefix, name)))
    log.debug("ssm name prefix read", prefix=prefix, count=len(items))
    return items


def get_by_names(client: Any, queries: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """GetParameters for ``queries`` (names, maybe with ``:selector``), batches of 10 in parallel.

    Returns query -> parameter. Any name that does not exist is a NotFoundError naming it.
    """
    batches = query_batches(queries)
    results = map_all(lambda b: _get_batch(client, b), batches)
    merged: dict[str, Mapping[str, Any]] = {}
    for result in results:
        merged.update(result)
    return merged


def query_batches(queries: Sequence[str]) -> list[list[str]]:
    """Batches of at most 10, never two selectors of one name in the same batch."""
    batches: list[list[str]] = []
    for query in queries:
        base = query.split(":", 1)[0]
        for batch in batches:
            if len(batch) < BATCH and all(q.split(":", 1)[0] != base for q in batch):
                batch.append(query)
                break
        else:
            batches.append([query])
    return batches


def _get_batch(client: Any, batch: list[str]) -> dict[str, Mapping[str, Any]]:
    resource = "SSM parameter " + ", ".join(repr(q) for q in batch)
    try:
        response = client.get_parameters(Names=batch, WithDecryption=True)
    except Exception as exc:
        raise map_aws_error(exc, action="ssm:GetParameters", resource=resource) from exc
    invalid = response.get("InvalidParameters") or []
    if invalid:
        raise NotFoundError(
            "SSM parameter " + ", ".join(repr(n) for n in sorted(invalid)) + " does not exist",
            hint=f"check the name, version or label, {the_region(client)} and the account",
        )
    out: dict[str, Mapping[str, Any]] = {}
    for param in response.get("Parameters", []):
        name = str(param["Name"])
        # Match by name: moto leaves out Selector, AWS returns it. One selector per name per batch.
        for query in batch:
            if query.split(":", 1)[0] == name:
                out[query] = param
    missing = [q for q in batch if q not in out]
    if missing:
        raise NotFoundError(
            "SSM parameter " + ", ".join(repr(n) for n in missing) + " does not exist",
            hint=f"check the name, version or label, {the_region(client)} and the account",
        )
    return out


def resolve_refs(client: Any, refs: Mapping[str, SsmRef]) -> dict[str, Item]:
    """Variable -> Item for SSM references that share one client (one region)."""
    queries = sorted({ref.query for ref in refs.values()})
    found = get_by_names(client, queries)
    for var, ref in refs.items():
        _check_account(var, ref, found[ref.query])
    return {var: _item(found[ref.query], key=None) for var, ref in refs.items()}


def _check_account(var: str, ref: SsmRef, param: Mapping[str, Any]) -> None:
    """An ARN reference is read by name, so in the task's own account: refuse another's.

    Without this, ``arn:aws:ssm:REGION:OTHER_ACCOUNT:parameter/x`` would silently give the
    task account's own ``/x``.
    """
    answered = aws_names.parse_arn(str(param.get("ARN") or ""))
    if ref.account is None or answered is None or answered[3] == ref.account:
        return
    raise NotFoundError(
        f"variable {var} references SSM parameter {ref.name!r} of account {ref.account}, "
        f"but account {answered[3]} answered",
        hint="reference a parameter of the task's own account (cross-account SSM ARNs "
        "are not supported)",
    )
