"""Map botocore failures to the agent's typed errors, by error code. Names, never values."""

from __future__ import annotations

from typing import Any

from agent.errors import (
    AccessDeniedError,
    AgentError,
    ConfigError,
    DataError,
    NotFoundError,
    ServiceError,
)

_NOT_FOUND = {
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ResourceNotFoundException",
    "NotFoundException",
}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "403",
}
_KMS = {
    "InvalidKeyId",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "DecryptionFailure",
    "DisabledException",
    "KeyUnavailableException",
}


def map_aws_error(exc: BaseException, *, action: str, resource: str) -> AgentError:
    """Turn a botocore exception raised by ``action`` on ``resource`` into an AgentError."""
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
        err: dict[str, Any] = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND:
            return NotFoundError(
                f"{resource} does not exist ({code} from {action})",
                hint="check the name, the region and the account",
            )
        if code in _KMS:
            return AccessDeniedError(
                f"KMS refused to decrypt {resource} ({code} during {action})",
                hint="grant kms:Decrypt on the key to the task role and check the key is enabled",
            )
        if code in _DENIED or status == 403:
            return AccessDeniedError(
                f"{action} on {resource} was denied ({code or status})",
                hint=f"grant {action} on {resource} to the task role",
            )
        if code in {"ValidationException", "InvalidParameterException", "InvalidRequestException"}:
            return DataError(
                f"{action} rejected the request for {resource} ({code})",
                hint="check the name and the reference syntax",
            )
        return ServiceError(
            f"{action} on {resource} failed ({code or status}) after retries",
            hint="check the service health and SECRETS_AGENT_TIMEOUT, then retry",
        )
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AccessDeniedError(
            f"no AWS credentials for {action}",
            hint="run with a task role, or set AWS credentials",
        )
    if isinstance(exc, NoRegionError):
        return ConfigError("no AWS region is configured", hint="set AWS_REGION")
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return ServiceError(
            f"{action} on {resource} could not reach AWS ({type(exc).__name__})",
            hint="check the network path to the endpoint (VPC endpoints, NAT, AWS_ENDPOINT_URL)",
        )
    return ServiceError(
        f"{action} on {resource} failed ({type(exc).__name__})",
        hint="retry; report it if it persists",
    )
