"""Secrets Manager's wording of the shared error table (``secrets_agent.aws.errors``).

- not found (ResourceNotFoundException): 66.
- unreadable (InvalidRequestException on a read: marked for deletion, or a stage that does not
  go with the version id): 66.
- DecryptionFailure: 77 when KMS denied access, 69 otherwise (key disabled or pending deletion).
- Access denied on BatchGetSecretValue: 77, and the hint lists the three actions a filtered
  batch needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secrets_agent.aws.errors import (
    DENIED,
    KMS_REFUSED,
    NOT_FOUND,
    UNREADABLE,
    code_of,
    kind_of,
    map_aws_error,
    status_of,
)
from secrets_agent.core import aws_names
from secrets_agent.core.errors import AccessDeniedError, AgentError, NotFoundError, ServiceError

BATCH_HINT = (
    "a prefix load needs secretsmanager:BatchGetSecretValue and secretsmanager:ListSecrets "
    'on "*", and secretsmanager:GetSecretValue on the prefix\'s secrets '
    "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:PREFIX/*); see secrets-agent iam-policy"
)
__all__ = ["BATCH_HINT", "code_of", "entry_error", "map_error"]


def map_error(
    exc: BaseException,
    *,
    action: str,
    subject: str,
    client: Any = None,
    secret_id: str | None = None,
) -> AgentError:
    """Secrets Manager's wording first, then the shared wording.

    ``client`` and ``secret_id`` (the secret a GetSecretValue read): a not-found line names
    the region searched, and an access-denied hint the secret's ARN pattern, which is what an
    IAM policy grants (not a reference's JSON key).
    """
    from botocore.exceptions import ClientError

    code, status = "", None
    if isinstance(exc, ClientError):
        code, message = code_of(exc)
        status = status_of(exc)
        mapped = _worded(code, message, action=action, subject=subject, client=client)
        if mapped is not None:
            return mapped
    mapped = map_aws_error(exc, action=action, resource=subject)
    if isinstance(mapped, AccessDeniedError) and action.endswith(
        ("BatchGetSecretValue", "ListSecrets")
    ):
        return AccessDeniedError(mapped.message, hint=BATCH_HINT)
    denied = kind_of("secretsmanager", code, status) == DENIED
    if isinstance(mapped, AccessDeniedError) and secret_id and denied:
        return AccessDeniedError(
            mapped.message,
            hint=f"grant {action} on {secret_arn_pattern(secret_id, client)} to the task role",
        )
    return mapped


def secret_arn_pattern(secret_id: str, client: Any = None) -> str:
    """The ARN an IAM policy names for ``secret_id``: the ARN itself, or, for a name,
    ``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-??????`` (AWS appends six random
    characters to every secret's ARN) in the client's region."""
    if secret_id.startswith("arn:"):
        return secret_id
    meta = getattr(client, "meta", None)
    region = getattr(meta, "region_name", None) or "REGION"
    partition = getattr(meta, "partition", None) or "aws"
    suffix = aws_names.SECRET_ARN_SUFFIX_WILDCARD
    return f"arn:{partition}:secretsmanager:{region}:ACCOUNT:secret:{secret_id}{suffix}"


def _worded(
    code: str, message: str, *, action: str, subject: str, client: Any = None
) -> AgentError | None:
    """The lines specific to Secrets Manager; None: the shared wording."""
    kind = kind_of("secretsmanager", code, None, message)
    if kind == NOT_FOUND:
        region = getattr(getattr(client, "meta", None), "region_name", None)
        searched = f"region ({region} was searched)" if region else "region"
        return NotFoundError(
            f"{subject} does not exist or has no such version ({code} from {action})",
            hint=f"check the name, stage, version id, {searched} and account",
        )
    if kind == UNREADABLE:
        return NotFoundError(
            f"{subject} cannot be read in its current state ({code} from {action}: "
            "it is usually marked for deletion, or the stage does not go with the version id)",
            hint="restore the secret (restore-secret) or fix the reference",
        )
    if code == "DecryptionFailure":
        if kind == KMS_REFUSED:
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
    action = "secretsmanager:GetSecretValue"
    mapped = _worded(code, str(entry.get("Message", "")), action=action, subject=subject)
    if mapped is not None:
        return mapped
    if kind_of("secretsmanager", code) == DENIED:
        return AccessDeniedError(
            f"{action} on {subject} was denied ({code} in BatchGetSecretValue)",
            hint=f"grant {action} on {subject} to the task role",
        )
    return ServiceError(f"BatchGetSecretValue could not read {subject} ({code})")
