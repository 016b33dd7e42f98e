"""Secrets Manager failures -> the agent's typed errors, by error code. Names, never values.

Secrets Manager's own decisions come first; everything else goes to the shared mapping in
``agent.sources.errors``:

- ResourceNotFoundException: 66.
- InvalidRequestException on a read: the secret cannot be read in its present state (marked for
  deletion, or a stage that does not go with the version id). It names nothing usable: 66.
- DecryptionFailure: 77 when KMS denied access, 69 otherwise (key disabled or pending deletion).
- Access denied on BatchGetSecretValue: 77, and the hint lists the three actions a filtered
  batch needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.errors import AccessDeniedError, AgentError, NotFoundError, ServiceError

_ACCESS_WORDS = ("access", "denied", "not authorized", "permission")
_DENIED = {"AccessDeniedException", "AccessDenied", "403"}
BATCH_HINT = (
    "a prefix load needs secretsmanager:BatchGetSecretValue and secretsmanager:ListSecrets "
    'on "*", and secretsmanager:GetSecretValue on the prefix\'s secrets '
    "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:PREFIX/*); see secrets-agent iam-policy"
)


def map_error(exc: BaseException, *, action: str, subject: str) -> AgentError:
    """Secrets Manager's own codes first, then the shared botocore mapping."""
    from botocore.exceptions import ClientError

    from agent.sources.errors import map_aws_error

    if isinstance(exc, ClientError):
        code, message = code_of(exc)
        mapped = by_code(code, message, action=action, subject=subject)
        if mapped is not None:
            return mapped
    mapped = map_aws_error(exc, action=action, resource=subject)
    if isinstance(mapped, AccessDeniedError) and action.endswith(
        ("BatchGetSecretValue", "ListSecrets")
    ):
        return AccessDeniedError(mapped.message, hint=BATCH_HINT)
    return mapped


def code_of(exc: Any) -> tuple[str, str]:
    err: Mapping[str, Any] = exc.response.get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", ""))


def by_code(code: str, message: str, *, action: str, subject: str) -> AgentError | None:
    """Decisions specific to Secrets Manager (see the module docstring); None: no decision."""
    if code == "ResourceNotFoundException":
        return NotFoundError(
            f"{subject} does not exist or has no such version ({code} from {action})",
            hint="check the name, stage, version id, region and account",
        )
    if code == "InvalidRequestException":
        return NotFoundError(
            f"{subject} cannot be read in its current state ({code} from {action}: "
            "it is usually marked for deletion, or the stage does not go with the version id)",
            hint="restore the secret (restore-secret) or fix the reference",
        )
    if code == "DecryptionFailure":
        if any(word in message.lower() for word in _ACCESS_WORDS):
            return AccessDeniedError(
                f"KMS denied decrypting {subject} ({code} from {action})",
                hint="grant kms:Decrypt on the secret's key to the task role, with "
                "kms:ViaService secretsmanager.REGION.amazonaws.com",
            )
        return ServiceError(
            f"Secrets Manager could not decrypt {subject} ({code} from {action})",
            hint="check that the secret's KMS key is enabled and not pending deletion",
        )
    return None


def entry_error(entry: Mapping[str, Any], subject: str) -> AgentError:
    """The error for one entry of BatchGetSecretValue's ``Errors``."""
    code = str(entry.get("ErrorCode", ""))
    mapped = by_code(
        code, str(entry.get("Message", "")), action="secretsmanager:GetSecretValue", subject=subject
    )
    if mapped is not None:
        return mapped
    if code in _DENIED:
        return AccessDeniedError(
            f"secretsmanager:GetSecretValue on {subject} was denied "
            f"({code} in BatchGetSecretValue)",
            hint=f"grant secretsmanager:GetSecretValue on {subject} to the task role",
        )
    return ServiceError(f"BatchGetSecretValue could not read {subject} ({code})")
