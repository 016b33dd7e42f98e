"""A blocking AWS job with a deadline: the main thread keeps handling signals while it waits,
and a 69 line says which endpoint failed last, and how."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secrets_agent.aws.clients import Clients
from secrets_agent.core.errors import AgentError, ServiceError, UnreachableError


def run_bounded(fn: Callable[[], Any], *, timeout: float, what: str, clients: Clients) -> Any:
    """Run ``fn`` in a daemon thread; a ServiceError (69) if it outlives ``timeout``.

    The calling (main) thread keeps handling signals while it waits.
    """
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="secrets-agent-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _with_endpoint(
            UnreachableError(
                f"{what} took longer than SECRETS_AGENT_TIMEOUT={timeout:g}s "
                f"({clients.calls} AWS calls, {clients.retries} retries)",
                hint="check that AWS is reachable and not throttling, "
                "or raise SECRETS_AGENT_TIMEOUT",
            ),
            clients,
        )
    if "error" in box:
        error = box["error"]
        if isinstance(error, UnreachableError):
            raise _with_endpoint(error, clients)
        if isinstance(error, AgentError):
            raise error
        raise ServiceError(f"{what} failed ({type(error).__name__})") from error
    return box.get("value")


def _with_endpoint(error: UnreachableError, clients: Clients) -> UnreachableError:
    """The 69 line with the endpoint host and what went wrong with the last attempt there
    (refused, timed out, TLS, DNS, throttled, HTTP 5xx), and where to look."""
    from secrets_agent.aws.errors import NETWORK_HINT, THROTTLED

    found = clients.last_failure()
    if found is None:
        return error
    host, failure = found
    if failure == THROTTLED:
        hint = (
            "AWS throttled the calls: raise SECRETS_AGENT_TIMEOUT, start fewer tasks at once, "
            "or ask for a higher quota"
        )
    elif failure.startswith("HTTP "):
        hint = "check the service health and SECRETS_AGENT_TIMEOUT, then retry"
    else:
        hint = f"{NETWORK_HINT}; or raise SECRETS_AGENT_TIMEOUT if AWS is only slow"
    return UnreachableError(
        f"{error.message}; last error: {failure} from {host}",
        hint=hint,
        details={"endpoint": host, "error": failure},
    )
