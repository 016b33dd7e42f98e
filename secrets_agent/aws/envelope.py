"""``aesdk:`` values: AWS Encryption SDK messages bound to one variable name.

A value ``aesdk:BASE64`` is an Encryption SDK message whose data key KMS encrypted under a key
from ``SECRETS_AGENT_KMS_KEY_ARNS`` and whose encryption context holds ``secrets-agent:name``
equal to the variable it is assigned to. Decryption uses the SDK's strict KMS provider limited to
those keys, at most one encrypted data key and the default (committing) policy.

The SDK (and boto3, which it pulls in) is imported only when an ``aesdk:`` value is present.
Errors name variables and key ARNs, never a value; the SDK's own logger is silenced because it
logs tracebacks on every failed decrypt.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from secrets_agent.aws.envelope_errors import REENCRYPT as _REENCRYPT
from secrets_agent.aws.envelope_errors import kms_failure as _kms_failure
from secrets_agent.core.aws_names import kms_region
from secrets_agent.core.errors import (
    AgentError,
    ConfigError,
    DataError,
)
from secrets_agent.core.fanout import map_all
from secrets_agent.core.model import Record, Secret
from secrets_agent.output.logs import Logger
from secrets_agent.process.fastpath import AESDK_PREFIX, is_aesdk

PREFIX = AESDK_PREFIX  # the fast path's, under the name this module's readers use
CONTEXT_KEY = "secrets-agent:name"
KEYS_VARIABLE = "SECRETS_AGENT_KMS_KEY_ARNS"
# Bounds for the KMS clients the SDK creates; the caller's deadline may lower them.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_ATTEMPTS = 3

def decrypt_records(
    records: Sequence[Record],
    *,
    key_arns: Sequence[str],
    botocore_session: Any,
    log: Logger,
    timeout: float | None = None,
) -> list[Record]:
    """Return ``records`` with every ``aesdk:`` value replaced by its decrypted value.

    A decrypted record keeps its name, source, source name and version and has
    ``encrypted=True``. All or nothing: the first failure (in record order) is raised.
    """
    pending = [i for i, r in enumerate(records) if is_aesdk(r.value.reveal())]
    if not pending:
        return list(records)
    if not key_arns:
        names = ", ".join(records[i].name for i in pending)
        raise ConfigError(
            f"{names} holds an aesdk: value but {KEYS_VARIABLE} is not set",
            hint=f"set {KEYS_VARIABLE} to the ARN of the KMS key that encrypted it",
        )
    started = time.monotonic()
    decryptor = _Decryptor(key_arns=key_arns, botocore_session=botocore_session, timeout=timeout)
    results: list[Record | AgentError]
    results = map_all(lambda i: decryptor.run(records[i], log), pending)
    out = list(records)
    for index, result in zip(pending, results, strict=True):
        if isinstance(result, AgentError):
            raise result
        out[index] = result
    log.info(
        "aesdk values decrypted",
        count=len(pending),
        names=[records[i].name for i in pending],
        ms=round((time.monotonic() - started) * 1000),
    )
    return out


def encrypt_value(
    plaintext: bytes,
    *,
    key_id: str,
    name: str,
    botocore_session: Any,
    timeout: float | None = None,
    region: str = "",
) -> str:
    """Return ``aesdk:`` + base64 of an Encryption SDK message bound to variable ``name``.

    ``region``: the region a key id or alias is looked up in (named when it is not found).
    """
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"the plaintext for {name} is not UTF-8 text, which an environment variable needs"
        ) from exc
    if "\x00" in text:
        raise DataError(f"the plaintext for {name} holds a NUL byte, which no variable can hold")
    if not text:
        raise DataError(f"the plaintext for {name} is empty", hint="pipe the value in on stdin")
    sdk = Sdk()
    session_region = botocore_session.get_config_variable("region")
    if region and kms_region(key_id) is None and not session_region:
        # A key id or alias is looked up in the session's region (AWS_REGION is boto3's).
        botocore_session.set_config_variable("region", region)
    provider = sdk.kms_provider(
        key_ids=[key_id], botocore_session=botocore_session, timeout=timeout
    )
    client = sdk.client()
    provider.recorded.error = None
    try:
        message, _header = client.encrypt(
            source=plaintext, key_provider=provider, encryption_context={CONTEXT_KEY: name}
        )
    except Exception as exc:  # the SDK raises many unrelated types
        raise _kms_failure(
            provider.recorded.error or exc,
            subject=f"encrypting {name}",
            key=key_id,
            encrypting=True,
            region=kms_region(key_id) or region,
        ) from exc
    return PREFIX + base64.b64encode(message).decode("ascii")


class _Decryptor:
    """One strict provider and SDK client, shared by the threads that decrypt."""

    def __init__(self, *, key_arns: Sequence[str], botocore_session: Any, timeout: float | None):
        self.allowed = frozenset(key_arns)
        self.sdk = Sdk()
        self.client = self.sdk.client()
        try:
            self.provider = self.sdk.kms_provider(
                key_ids=list(key_arns), botocore_session=botocore_session, timeout=timeout
            )
        except Exception as exc:  # the SDK raises many unrelated types
            raise _kms_failure(
                exc, subject="preparing KMS clients", key="", encrypting=False
            ) from exc

    def run(self, record: Record, log: Logger) -> Record | AgentError:
        started = time.monotonic()
        try:
            plaintext, key = self.decrypt(record.name, record.value.reveal())
        except AgentError as exc:
            return exc
        log.debug(
            "aesdk value decrypted",
            name=record.name,
            source=record.source,
            source_name=record.source_name,
            key=key,
            ms=round((time.monotonic() - started) * 1000),
        )
        return replace(record, value=Secret(plaintext), encrypted=True)

    def decrypt(self, name: str, value: str) -> tuple[str, str]:
        what = f"the aesdk: value of {name}"
        try:
            # Wrapped base64 (``base64`` breaks lines at 76 columns) is base64: line breaks,
            # spaces and tabs are left out; any other character outside the alphabet is refused.
            message = base64.b64decode(value[len(PREFIX) :].translate(_WRAPPING), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DataError(f"{what} is not valid base64", hint=_REENCRYPT) from exc
        key = self.precheck(name, what, message)
        self.provider.recorded.error = None
        try:
            raw, header = self.client.decrypt(source=message, key_provider=self.provider)
        except Exception as exc:  # cryptography, struct and SDK errors alike
            recorded = self.provider.recorded.error
            raise _kms_failure(recorded or exc, subject=what, key=key, encrypting=False) from exc
        bound = header.encryption_context.get(CONTEXT_KEY)
        if bound != name:
            raise _context_mismatch(what, name, bound)
        try:
            plaintext = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{what} decrypts to bytes that are not UTF-8") from exc
        if "\x00" in plaintext:
            raise DataError(f"{what} decrypts to a value holding a NUL byte")
        return plaintext, key

    def precheck(self, name: str, what: str, message: bytes) -> str:
        """Read the (not yet authenticated) header: one data key, an allowed key, the name.

        These give precise errors before any KMS call; the authenticated header returned by
        decryption is checked again afterwards.
        """
        import io

        try:
            header, _raw = self.sdk.deserialize_header(io.BytesIO(message), 1)
        except self.sdk.MaxEncryptedDataKeysExceeded as exc:
            raise DataError(
                f"{what} holds more than one encrypted data key", hint=_REENCRYPT
            ) from exc
        except Exception as exc:  # struct, SDK and decoding errors alike
            raise DataError(
                f"{what} is not an AWS Encryption SDK message (truncated or corrupted)",
                hint=_REENCRYPT,
            ) from exc
        keys = [
            _text(edk.key_provider.key_info)
            for edk in header.encrypted_data_keys
            if _text(edk.key_provider.provider_id) == "aws-kms"
        ]
        if not keys:
            raise DataError(f"{what} was not encrypted with AWS KMS", hint=_REENCRYPT)
        if not any(k in self.allowed for k in keys):
            raise DataError(
                f"{what} was encrypted under KMS key {keys[0]}, which is not in {KEYS_VARIABLE}",
                hint=f"add the key to {KEYS_VARIABLE} if it is trusted, or re-encrypt the value",
            )
        bound = header.encryption_context.get(CONTEXT_KEY)
        if bound != name:
            raise _context_mismatch(what, name, bound)
        return keys[0]


_WRAPPING = str.maketrans("", "", "\n\r \t")


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _context_mismatch(what: str, name: str, bound: object) -> DataError:
    if bound is None:
        return DataError(
            f"{what} is not bound to a variable (no {CONTEXT_KEY} in its encryption context)",
            hint=_REENCRYPT,
        )
    return DataError(
        f"{what} was encrypted for variable {bound}, not {name}",
        hint=f"an aesdk: value only decrypts under its own name; {_REENCRYPT}",
    )


class Sdk:
    """The parts of aws_encryption_sdk the agent uses, loaded on first need (its import costs
    about 100 ms, so nothing imports it before an ``aesdk:`` value or ``encrypt`` needs it).

    ``client()`` and ``kms_provider()`` are the strict client and key provider every decrypt and
    encrypt uses; tests build messages the agent must refuse with them."""

    def __init__(self) -> None:
        import logging
        import warnings

        quiet = logging.getLogger("aws_encryption_sdk")
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        quiet.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import aws_encryption_sdk
            from aws_encryption_sdk.exceptions import MaxEncryptedDataKeysExceeded
            from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

        self.module: Any = aws_encryption_sdk
        self.MaxEncryptedDataKeysExceeded: type[Exception] = MaxEncryptedDataKeysExceeded
        self.deserialize_header: Any = deserialize_header

    def client(self) -> Any:
        """An EncryptionSDKClient that requires key commitment and one encrypted data key."""
        return self.module.EncryptionSDKClient(
            commitment_policy=self.module.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
            max_encrypted_data_keys=1,
        )

    def kms_provider(
        self, *, key_ids: list[str], botocore_session: Any, timeout: float | None
    ) -> Any:
        """A StrictAwsKmsMasterKeyProvider whose KMS clients are bounded and record their errors.

        Both through botocore's public interfaces, on the session the SDK creates its clients
        from: the bounds are the session's default client config (merged under any config a
        client is created with), and an ``after-call`` handler keeps each failed KMS call's
        error (per thread), because the SDK turns every KMS ClientError into a bare "Unable to
        decrypt any data key" and the code tells access denied from a bad ciphertext.
        """
        from botocore.config import Config

        budget = timeout if timeout and timeout > 0 else None
        bounds = Config(
            connect_timeout=min(CONNECT_TIMEOUT, budget or CONNECT_TIMEOUT),
            read_timeout=min(READ_TIMEOUT, budget or READ_TIMEOUT),
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            # The SDK sets user_agent_extra itself (its own wins in the merge): the app id it is.
            user_agent_appid="secrets-agent",
        )
        current = botocore_session.get_default_client_config()
        botocore_session.set_default_client_config(current.merge(bounds) if current else bounds)
        # Every KMS client the SDK creates from this session reads at most MAX_ANSWER_BYTES of an
        # answer, as the SSM and Secrets Manager clients do.
        botocore_session.register(
            "creating-client-class.kms", _bounded_client_class, unique_id=_RECORDER + "-bounded"
        )
        botocore_session.register("after-call.kms", _record_kms_error, unique_id=_RECORDER)
        botocore_session.register(
            "after-call-error.kms", _record_kms_exception, unique_id=_RECORDER + "-exception"
        )
        provider = self.module.StrictAwsKmsMasterKeyProvider(
            key_ids=key_ids, botocore_session=botocore_session
        )
        provider.recorded = _recorded
        return provider


_RECORDER = "secrets-agent-record-kms-error"


class _BoundedAnswers:
    """A base of the KMS client classes: the answer cap of ``secrets_agent.aws.clients``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from secrets_agent.aws.clients import _bound_answers

        super().__init__(*args, **kwargs)
        _bound_answers(self)


def _bounded_client_class(base_classes: list[type], **_: Any) -> None:
    if _BoundedAnswers not in base_classes:
        base_classes.insert(0, _BoundedAnswers)
_recorded = threading.local()


def _record_kms_exception(exception: BaseException, **_: Any) -> None:
    """Keep what ended a KMS call without an answer (a dropped connection after the retries, a
    timeout): the SDK turns it into "Unable to decrypt any data key" too."""
    from botocore.exceptions import BotoCoreError

    if isinstance(exception, (BotoCoreError, AgentError)):
        _recorded.error = exception


def _record_kms_error(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
    """Keep the error of a failed KMS call for ``kms_failure`` (codes, never a body)."""
    if getattr(http_response, "status_code", 200) >= 300:
        from botocore.exceptions import ClientError

        _recorded.error = ClientError(parsed, model.name)
