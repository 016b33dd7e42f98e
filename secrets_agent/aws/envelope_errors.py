"""The error lines of ``aesdk:`` values: a KMS, botocore or SDK failure as the agent's error.

``kms_failure`` maps a failure recorded during an Encryption SDK call (or the SDK's own error) to
one AgentError naming the value and the key, never a value; a ClientError by its kind
(``secrets_agent.aws.errors``), anything else by its class.
"""

from __future__ import annotations

from dataclasses import dataclass

from secrets_agent.aws import errors
from secrets_agent.core.errors import (
    AccessDeniedError,
    AgentError,
    ConfigError,
    DataError,
    NotFoundError,
    UnreachableError,
)

_ENCRYPTER = (
    "the identity that runs encrypt (a workstation's or CI's role; "
    "the task role needs only kms:Decrypt)"
)
REENCRYPT = "re-create it with `secrets-agent encrypt --key-id KEY --name VAR`"


@dataclass(frozen=True)
class _Call:
    """The failed call: what it was for, with which key, encrypting or decrypting."""

    subject: str
    key: str
    encrypting: bool
    region: str

    @property
    def on_key(self) -> str:
        return f" with KMS key {self.key}" if self.key else ""

    @property
    def action(self) -> str:
        return "kms:GenerateDataKey" if self.encrypting else "kms:Decrypt"

    @property
    def who(self) -> str:
        # encrypt runs on a workstation or in CI, never in the task: its identity is not the
        # task's.
        return _ENCRYPTER if self.encrypting else "the task role"


def kms_failure(
    exc: BaseException, *, subject: str, key: str, encrypting: bool, region: str = ""
) -> AgentError:
    """Map a KMS/botocore failure recorded during an SDK call, or the SDK's own error."""
    from botocore.exceptions import ClientError

    if isinstance(exc, AgentError):
        # Already mapped, e.g. a malformed answer on every attempt (secrets_agent.aws.clients).
        return exc
    call = _Call(subject, key, encrypting, region)
    if isinstance(exc, ClientError):
        return _client_failure(exc, call)
    return _other_failure(exc, call)


def _client_failure(exc: BaseException, call: _Call) -> AgentError:
    """A ClientError KMS answered, by its kind."""
    code, _message = errors.code_of(exc)
    status = errors.status_of(exc)
    kind = errors.kind_of("kms", code, status)
    subject, on_key, action = call.subject, call.on_key, call.action
    if kind == errors.DENIED:
        hint = f"allow {action} on the key to {call.who} (see docs/aesdk.md)"
        if not call.encrypting:
            hint += "; if the role has it, the value is corrupted: re-encrypt it"
        return AccessDeniedError(
            f"KMS denied {action} for {subject}{on_key} ({code or status})", hint=hint
        )
    if kind == errors.KEY_UNUSABLE:
        return AccessDeniedError(
            f"KMS refused {action} for {subject}{on_key}: the key is disabled or unavailable "
            f"({code})",
            hint="enable the key, or re-encrypt the value under an enabled key",
        )
    if kind == errors.NOT_FOUND:
        return _key_not_found(code, call)
    if kind == errors.BAD_CIPHERTEXT:
        return DataError(f"KMS rejected the data key of {subject} ({code})", hint=REENCRYPT)
    return UnreachableError(
        f"KMS failed during {subject} ({code or status}) after retries",
        hint="check KMS health and SECRETS_AGENT_TIMEOUT, then retry",
    )


def _key_not_found(code: str, call: _Call) -> AgentError:
    """The key is not there: a wrong --key-id when encrypting, a deleted key when decrypting."""
    if call.encrypting:
        region = call.region
        searched = f" in {region}" if region else ""
        return NotFoundError(
            f"KMS key {call.key} does not exist{searched} ({code})",
            hint="--key-id takes a key ARN, a key id, an alias (alias/NAME) or an alias "
            f"ARN; check it, the region{searched and f' ({region} was searched)'} "
            "and the account",
        )
    return DataError(f"{call.subject}: its KMS key no longer exists ({code})", hint=REENCRYPT)


def _other_failure(exc: BaseException, call: _Call) -> AgentError:
    """Botocore's own errors (no credentials, no region, no connection), or the SDK's."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError

    subject, action, encrypting = call.subject, call.action, call.encrypting
    if isinstance(exc, NoCredentialsError):
        return AccessDeniedError(
            f"no AWS credentials for {action} during {subject}",
            hint=f"set AWS credentials for {call.who}" if encrypting
            else "run with a task role, or set AWS credentials",
        )
    if isinstance(exc, NoRegionError):
        return ConfigError(
            f"no AWS region is configured for {action} during {subject}",
            hint="set AWS_REGION, or give --key-id as a key ARN, which names its region"
            if encrypting
            else "set AWS_REGION (ECS sets it itself)",
        )
    if isinstance(exc, BotoCoreError):
        return UnreachableError(
            f"{action} could not reach KMS during {subject} ({type(exc).__name__})",
            hint="check the network path to KMS (VPC endpoint, NAT, AWS_ENDPOINT_URL_KMS)",
        )
    if encrypting:
        return DataError(f"{subject}{call.on_key} failed ({type(exc).__name__})")
    return DataError(
        f"{subject} could not be decrypted: it is corrupted, truncated or not for this key "
        f"({type(exc).__name__})",
        hint=REENCRYPT,
    )
