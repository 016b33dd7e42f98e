"""The one paging loop of every source: until NextToken is absent, and never in a circle."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from secrets_agent.core.errors import ServiceError


def pages(
    call: Callable[[dict[str, Any]], Mapping[str, Any]], kwargs: Mapping[str, Any], *, what: str
) -> Iterator[Mapping[str, Any]]:
    """Yield every page of ``call(kwargs + NextToken)``. Empty pages with a token are normal
    (SSM returns them); a token seen before means the service (or something between it and the
    agent) is sending the load in a circle, which would otherwise run until the timeout."""
    token: str | None = None
    seen: set[str] = set()
    while True:
        request = dict(kwargs)
        if token is not None:
            request["NextToken"] = token
        page = call(request)
        yield page
        token = page.get("NextToken") or None
        if token is None:
            return
        if token in seen:
            raise ServiceError(
                f"{what} returned the same page token twice",
                hint="retry; check any proxy or VPC endpoint between the task and AWS",
            )
        seen.add(token)
