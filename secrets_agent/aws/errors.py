"""The one table from AWS error codes to the agent's typed errors (and so to exit codes).

Every source (SSM, Secrets Manager, KMS through the Encryption SDK) asks ``kind_of(service,
code, status)`` what a failure means; the callers only word the one line. Names, never values:
an AWS error message is read for one decision only (Secrets Manager's DecryptionFailure) and is
never printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secrets_agent.core.errors import (
    AccessDeniedError,
    AgentError,
    ConfigError,
    DataError,
    NotFoundError,
    ServiceError,
    UnreachableError,
)

# What a failure means, whatever the service: the caller words the line.
DENIED = "denied"  # 77
NOT_FOUND = "not-found"  # 66
UNREADABLE = "unreadable"  # 66: exists but cannot be read in its present state
INVALID = "invalid"  # 65: the request was refused as malformed
KMS_REFUSED = "kms-refused"  # 77: a service's KMS call for us was refused
KEY_UNUSABLE = "key-unusable"  # 77: the key is disabled or unavailable
BAD_CIPHERTEXT = "bad-ciphertext"  # 65: the data does not go with the key
DECRYPTION_FAILURE = "decryption-failure"  # Secrets Manager: 77 or 69 by its message
FAILED = "failed"  # 69: anything else, after retries

_ANY = "*"
_TABLE: Mapping[tuple[str, str], str] = {
    **{
        (_ANY, code): DENIED
        for code in (
            "AccessDeniedException",
            "AccessDenied",
            "UnauthorizedOperation",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "403",
        )
    },
    **{
        (_ANY, code): INVALID
        for code in ("ValidationException", "InvalidParameterException", "InvalidRequestException")
    },
    ("ssm", "ParameterNotFound"): NOT_FOUND,
    ("ssm", "ParameterVersionNotFound"): NOT_FOUND,
    (_ANY, "ResourceNotFoundException"): NOT_FOUND,
    (_ANY, "NotFoundException"): NOT_FOUND,
    **{
        ("ssm", code): KMS_REFUSED
        for code in (
            "InvalidKeyId",
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "KMSInvalidStateException",
            "KMSNotFoundException",
            "DecryptionFailure",
            "DisabledException",
            "KeyUnavailableException",
        )
    },
    ("secretsmanager", "InvalidRequestException"): UNREADABLE,
    ("secretsmanager", "DecryptionFailure"): DECRYPTION_FAILURE,
    **{
        ("kms", code): KEY_UNUSABLE
        for code in ("DisabledException", "KMSInvalidStateException", "KeyUnavailableException")
    },
    **{
        ("kms", code): BAD_CIPHERTEXT
        for code in (
            "InvalidCiphertextException",
            "IncorrectKeyException",
            "InvalidKeyUsageException",
        )
    },
}
_ACCESS_WORDS = ("access", "denied", "not authorized", "permission")


def kind_of(service: str, code: str, status: int | None = None, message: str = "") -> str:
    """What an AWS error means (one of the constants above)."""
    kind = _TABLE.get((service, code)) or _TABLE.get((_ANY, code))
    if kind is None:
        return DENIED if status == 403 else FAILED
    if kind == DECRYPTION_FAILURE:
        return KMS_REFUSED if any(w in message.lower() for w in _ACCESS_WORDS) else FAILED
    return kind


def code_of(exc: Any) -> tuple[str, str]:
    """A ClientError's code and message (the message is for decisions, never for output)."""
    err: Mapping[str, Any] = exc.response.get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", ""))


def status_of(exc: Any) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else None


def map_aws_error(exc: BaseException, *, action: str, resource: str) -> AgentError:
    """Turn a botocore exception raised by ``action`` (``ssm:GetParameters``) on ``resource``
    into an AgentError."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, ClientError):
        return _client_error(exc, action=action, resource=resource)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AccessDeniedError(
            f"no AWS credentials for {action}",
            hint="run with a task role, or set AWS credentials",
        )
    if isinstance(exc, NoRegionError):
        return ConfigError("no AWS region is configured", hint="set AWS_REGION")
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return UnreachableError(
            f"{action} on {resource} could not reach AWS ({type(exc).__name__})",
            hint="check the network path to the endpoint (VPC endpoints, NAT, AWS_ENDPOINT_URL)",
        )
    return ServiceError(
        f"{action} on {resource} failed ({type(exc).__name__})",
        hint="retry; report it if it persists",
    )


def _client_error(exc: BaseException, *, action: str, resource: str) -> AgentError:
    """A ClientError AWS answered to ``action`` on ``resource``, by its kind."""
    code, message = code_of(exc)
    status = status_of(exc)
    kind = kind_of(action.partition(":")[0], code, status, message)
    if kind == NOT_FOUND:
        return NotFoundError(
            f"{resource} does not exist ({code} from {action})",
            hint="check the name, the region and the account",
        )
    if kind in (KMS_REFUSED, KEY_UNUSABLE):
        return AccessDeniedError(
            f"KMS refused to decrypt {resource} ({code} during {action})",
            hint="grant kms:Decrypt on the key to the task role and check the key is enabled",
        )
    if kind == DENIED:
        return AccessDeniedError(
            f"{action} on {resource} was denied ({code or status})",
            hint=f"grant {action} on {resource} to the task role",
        )
    if kind == INVALID:
        return DataError(
            f"{action} rejected the request for {resource} ({code})",
            hint="check the name and the reference syntax",
        )
    return UnreachableError(
        f"{action} on {resource} failed ({code or status}) after retries",
        hint="check the service health and SECRETS_AGENT_TIMEOUT, then retry",
    )


# -- why a call could not get an answer: the last attempt's failure, for the 69 line ----------
THROTTLED = "throttled"
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "TransactionInProgressException",
    }
)


def attempt_failure(caught_exception: BaseException | None, response: Any) -> str | None:
    """What went wrong with one HTTP attempt, in a few words (``refused``, ``timed out``,
    ``TLS``, ``DNS``, ``throttled``, ``HTTP 503`` ...); None when it got a good answer.

    Read from exception types and the error code only: never a message, which can quote
    anything an endpoint sends.
    """
    if caught_exception is not None:
        return _exception_failure(caught_exception)
    if not isinstance(response, tuple) or len(response) != 2:
        return None
    http_response, parsed = response
    status = getattr(http_response, "status_code", 200)
    code = ""
    if isinstance(parsed, Mapping):
        code = str((parsed.get("Error") or {}).get("Code") or "")
    if code in _THROTTLING_CODES or status == 429:
        return THROTTLED
    if isinstance(status, int) and status >= 500:
        return f"HTTP {status}" + (f" {code}" if code else "")
    return None


def _exception_failure(exc: BaseException) -> str:
    import socket
    import ssl

    from botocore import exceptions as bx

    if isinstance(exc, bx.SSLError):
        return "TLS"
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return "timed out"
    inner = getattr(exc, "kwargs", {}).get("error") if isinstance(exc, bx.BotoCoreError) else exc
    seen = 0
    while isinstance(inner, BaseException) and seen < 8:
        if isinstance(inner, socket.gaierror):
            return "DNS"
        if isinstance(inner, ConnectionRefusedError):
            return "refused"
        if isinstance(inner, ssl.SSLError):
            return "TLS"
        if isinstance(inner, (TimeoutError, socket.timeout)):
            return "timed out"
        if isinstance(inner, ConnectionResetError):
            return "connection reset"
        inner = inner.__cause__ or inner.__context__
        seen += 1
    if isinstance(exc, bx.ConnectionClosedError):
        return "connection closed"
    return type(exc).__name__


def endpoint_host(url: str) -> str:
    """``host[:port]`` of a request URL: no scheme, credentials, path or query."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


NETWORK_HINT = (
    "from private subnets the task needs a NAT gateway, or VPC endpoints for ssm, "
    "secretsmanager, kms and ecs (interface endpoints with private DNS); check "
    "AWS_ENDPOINT_URL* and any proxy"
)


def the_region(client: Any) -> str:
    """``the region (eu-west-1 was searched)``: a not-found hint names the region the client
    used, the usual mistake being a task in one region and its secrets in another."""
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return f"the region ({region} was searched)" if region else "the region"
