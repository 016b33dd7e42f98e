"""botocore clients, created lazily, bounded by the resolution deadline, and observed.

The agent uses botocore directly (boto3 adds nothing it needs). Every client honours boto3's
own environment variables (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SSM``, credentials, ...).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from secrets_agent.aws.errors import attempt_failure, endpoint_host
from secrets_agent.core import aws_names
from secrets_agent.core.errors import ConfigError, ServiceError
from secrets_agent.output.logs import Logger

# Identifying request parameters worth a debug line; never a value-bearing one.
_LOGGED_PARAMS = (
    "Name",
    "Names",
    "Path",
    "Recursive",
    "ParameterFilters",
    "SecretId",
    "SecretIdList",
    "Filters",
    "VersionStage",
    "VersionId",
    "KeyId",
    "EncryptionContext",
    "NextToken",
    # ECS (SECRETS_AGENT_ON_CHANGE=redeploy): names and ARNs only.
    "cluster",
    "service",
    "services",
    "tasks",
    "forceNewDeployment",
)


def _context_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """A KMS encryption context (never secret by design), the SDK's long public key elided."""
    context = params.get("EncryptionContext")
    if not isinstance(context, Mapping):
        return {}
    shown = {k: ("..." if k == "aws-crypto-public-key" else v) for k, v in sorted(context.items())}
    return {"EncryptionContext": shown}


DEFAULT_MAX_ATTEMPTS = 10


class Clients:
    """A small factory and cache of botocore clients, one per (service, region)."""

    def __init__(self, *, environ: Mapping[str, str], timeout: float, log: Logger) -> None:
        self._environ = environ
        self._timeout = timeout
        self._log = log
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str, int | None], Any] = {}
        self.calls = 0
        self.attempts = 0
        #: "service:Operation" -> calls made (attempts not counted)
        self.by_operation: dict[str, int] = {}
        self.attempt_log = AttemptLog()

    @property
    def retries(self) -> int:
        return max(0, self.attempts - self.calls)

    def default_region(self) -> str:
        region = aws_names.region_of(self._environ)
        if not region:
            region = self.session().get_config_variable("region")
        if not region:
            raise ConfigError(
                "no AWS region is configured",
                hint="set AWS_REGION or AWS_DEFAULT_REGION (ECS sets AWS_REGION itself)",
            )
        return str(region)

    def max_attempts(self) -> int:
        """``AWS_MAX_ATTEMPTS`` (boto's own variable) when set, else 10 (retries within the
        SECRETS_AGENT_TIMEOUT budget, which bounds them anyway)."""
        raw = self._environ.get("AWS_MAX_ATTEMPTS", "").strip()
        if not raw:
            return DEFAULT_MAX_ATTEMPTS
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ConfigError(
                "AWS_MAX_ATTEMPTS must be a whole number from 1 to 100",
                hint="unset it to use the default of 10 attempts",
            )
        return int(raw)

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                import botocore.session

                from secrets_agent.aws.model_lookup import speed_up

                self._session = botocore.session.get_session()
                speed_up(self._session)  # ~20 ms less CPU per client; see model_lookup
                self._session.set_config_variable("retry_mode", "standard")
                self._session.register("before-parse", _retry_malformed)
                self._session.register("after-call", _raise_if_malformed)
                # On the session, so that every client is observed and counted, the
                # Encryption SDK's KMS clients included (they do not come from get()).
                self._session.register("before-parameter-build", self._on_call)
                self._session.register("before-send", self._on_send)
                self._session.register("needs-retry", self._on_attempt)
            return self._session

    def get(self, service: str, region: str | None = None, *, attempts: int | None = None) -> Any:
        """The client of ``service`` in ``region``. ``attempts`` replaces the attempts per call
        (``1``: no SDK retry, for a call that must not be sent twice, such as
        ``ecs:UpdateService``); such a client is cached apart from the default one."""
        region = region or self.default_region()
        key = (service, region, attempts)
        session = self.session()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from botocore.config import Config

                config = Config(
                    region_name=region,
                    connect_timeout=min(5.0, self._timeout),
                    read_timeout=min(10.0, self._timeout),
                    retries={
                        "mode": "standard",
                        "total_max_attempts": attempts or self.max_attempts(),
                    },
                    max_pool_connections=20,
                    user_agent_extra="secrets-agent",
                )
                client = session.create_client(service, config=config)
                _bound_answers(client)
                self._clients[key] = client
            return client

    def _on_call(
        self, params: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any
    ) -> None:
        operation = f"{model.service_model.service_name}:{model.name}"
        with self._lock:
            self.calls += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
        if self._log.enabled("debug"):
            logged = {**params, **_context_keys(params)}
            self._log.debug(
                "aws call",
                service=model.service_model.service_name,
                operation=model.name,
                region=str((context or {}).get("client_region") or ""),
                params={k: logged[k] for k in _LOGGED_PARAMS if k in logged},
            )

    def _on_send(self, request: Any, **_: Any) -> None:
        host = endpoint_host(str(getattr(request, "url", "") or ""))
        with self._lock:
            self.attempts += 1
        self.attempt_log.sent(host)

    def _on_attempt(
        self,
        request_dict: Mapping[str, Any] | None = None,
        response: Any = None,
        caught_exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """After every attempt (botocore asks whether to retry it): keep the last failure."""
        failure = attempt_failure(caught_exception, response)
        host = endpoint_host(str((request_dict or {}).get("url") or ""))
        self.attempt_log.ended(host, failure)

    def last_failure(self) -> tuple[str, str] | None:
        """(endpoint host, what went wrong) of the last failed attempt (see AttemptLog)."""
        return self.attempt_log.last_failure()


class AttemptLog:
    """What the HTTP attempts of a start met, for the one line a 69 prints.

    The caller asks once its deadline has passed. An attempt still waiting for its answer then
    is ``timed out`` if it has waited at least ``WAITING``; one sent a moment ago (a retry that
    began just before the deadline) says nothing yet, so the failure before it is told: a
    refused connection stays ``refused`` on a machine slow enough to be mid-retry.
    """

    WAITING = 1.0  # seconds an attempt waits before its silence counts as a time-out

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, float]] = {}  # attempt number -> (host, sent at)
        self._sent = 0
        self._last_failure: tuple[str, str] | None = None  # (host, what went wrong)

    def sent(self, host: str) -> None:
        with self._lock:
            self._sent += 1
            self._waiting[self._sent] = (host, self._clock())

    def ended(self, host: str, failure: str | None) -> None:
        """One attempt to ``host`` ended; ``failure`` is what went wrong, None for an answer.
        Attempts end in the order they were sent on one connection; across threads the oldest
        one waiting to ``host`` is taken as the one that ended."""
        with self._lock:
            for number, (waiting_host, _) in sorted(self._waiting.items()):
                if waiting_host == host or not host:
                    del self._waiting[number]
                    break
            if failure is not None:
                self._last_failure = (host, failure)

    def last_failure(self) -> tuple[str, str] | None:
        with self._lock:
            now = self._clock()
            for host, sent_at in sorted(self._waiting.values(), key=lambda item: item[1]):
                if host and now - sent_at >= self.WAITING:
                    return (host, "timed out")
            if self._last_failure is not None:
                return self._last_failure
            oldest = min(self._waiting.values(), key=lambda item: item[1], default=None)
            return (oldest[0], "timed out") if oldest and oldest[0] else None


# The code botocore's standard retry mode treats as transient whatever the transport does.
_TRANSIENT_CODE = "RequestTimeoutException"
_MALFORMED = "SecretsAgentMalformedAnswer"


def _malformed(operation_model: Any, response_dict: Mapping[str, Any]) -> str | None:
    """Why a 2xx JSON-protocol answer cannot be trusted, or None when it can.

    A body shorter than its ``Content-Length`` (a cut connection; older urllib3 raised, newer
    releases hand the short body on), an empty body where the operation has output, or a body
    that is not one JSON object. botocore would parse the last two as an empty result: a
    GetParametersByPath page without parameters and without NextToken, which would end a load
    early with a partial environment.
    """
    status = int(response_dict.get("status_code") or 0)
    service = operation_model.service_model
    # resolved_protocol arrived in botocore 1.40; the metadata's protocol is the same before.
    protocol = getattr(service, "resolved_protocol", None) or service.metadata.get("protocol")
    if status >= 300 or protocol != "json":
        return None
    body = response_dict.get("body") or b""
    headers = response_dict.get("headers") or {}
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) != len(body):
        return f"a body of {len(body)} bytes where {int(declared)} were announced"
    if not body:
        if operation_model.output_shape is None:
            return None  # an operation without output may answer with no body
        return "an empty body"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        return f"a body that is not valid JSON ({len(body)} bytes)"
    return None


def _retry_malformed(
    operation_model: Any,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """Make a malformed 2xx answer a transient error that botocore's own retry handles.

    The answer is rewritten, before parsing, into an error whose code the standard retry mode
    retries (the same backoff, attempt limit and retry quota as a dropped connection), and
    marked. If the last attempt is malformed too, ``_raise_if_malformed`` turns the marked
    result into a ServiceError naming the operation. The body is never quoted: it may hold
    values.
    """
    reason = _malformed(operation_model, response_dict)
    if reason is None:
        return
    reason = f"HTTP {response_dict.get('status_code')} with {reason}"
    response_dict["status_code"] = 500
    response_dict["headers"] = {"content-type": "application/x-amz-json-1.1"}
    response_dict["body"] = json.dumps(
        {"__type": _TRANSIENT_CODE, "message": "malformed answer"}
    ).encode()
    customized_response_dict[_MALFORMED] = reason


def _raise_if_malformed(parsed: Mapping[str, Any], model: Any, **_: Any) -> None:
    reason = parsed.get(_MALFORMED) if isinstance(parsed, Mapping) else None
    if reason is None:
        return
    raise ServiceError(
        f"{model.service_model.service_name} {model.name} answered {reason}, on every attempt",
        hint="retry; check any proxy or VPC endpoint between the task and AWS",
    )


# Far above any real answer (a BatchGetSecretValue page of 20 secrets of 64 KiB is under 2 MiB),
# far below a task's memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


def _bound_answers(client: Any) -> None:
    """Read each answer's body with a size cap, so that a broken proxy streaming gigabytes ends
    in 69 naming the operation, not in an out-of-memory kill without a message.

    botocore reads a body whole before any public hook sees it, so the cap wraps the HTTP
    session of the client's endpoint (a private attribute; without it, no cap and no failure).
    """
    endpoint: Any = getattr(client, "_endpoint", None)
    inner = getattr(endpoint, "http_session", None)
    if inner is not None and not isinstance(inner, _BoundedSession):
        endpoint.http_session = _BoundedSession(inner, MAX_ANSWER_BYTES)


class _BoundedSession:
    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, request: Any) -> Any:
        if request.stream_output:
            return self._inner.send(request)
        request.stream_output = True  # headers now, the body below
        try:
            response = self._inner.send(request)
        finally:
            request.stream_output = False
        declared = str(response.headers.get("content-length") or "")
        if declared.isdigit() and int(declared) > self._limit:
            response.raw.close()
            raise self._too_large(request, f"announced {int(declared)} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.raw.stream(64 * 1024):
                total += len(chunk)
                if total > self._limit:
                    response.raw.close()
                    raise self._too_large(request, f"sent more than {self._limit} bytes")
                chunks.append(chunk)
        except ServiceError:
            raise
        except Exception as exc:  # urllib3's read errors, as botocore's send maps them
            raise _read_error(request, exc) from exc
        response._content = b"".join(chunks)
        return response

    def _too_large(self, request: Any, what: str) -> ServiceError:
        target = request.headers.get("X-Amz-Target") or ""
        if isinstance(target, bytes):
            target = target.decode("ascii", "replace")
        operation = target.rpartition(".")[2] or "an AWS call"
        return ServiceError(
            f"the answer to {operation} {what}, more than the {self._limit // (1024 * 1024)} MiB "
            "the agent reads from one answer",
            hint="check any proxy or VPC endpoint between the task and AWS",
        )


def _read_error(request: Any, exc: Exception) -> Any:
    from botocore.exceptions import ConnectionClosedError, HTTPClientError, ReadTimeoutError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeoutError

    if isinstance(exc, Urllib3ReadTimeoutError):
        return ReadTimeoutError(endpoint_url=request.url, error=exc)
    if isinstance(exc, ProtocolError):
        return ConnectionClosedError(error=exc, request=request, endpoint_url=request.url)
    return HTTPClientError(error=exc)


class Deadline:
    """Seconds left of the resolution budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
