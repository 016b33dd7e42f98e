"""Pure parsing of reference values: ``ssm:``, ``secretsmanager:``, their ARNs, and ``aesdk:``.

A value that starts like a reference but does not parse is a DataError: it is never passed on
as a literal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from secrets_agent.core import aws_names
from secrets_agent.core.errors import DataError
from secrets_agent.process.fastpath import AESDK_PREFIX, is_aesdk, looks_like_reference

_SSM_NAME = aws_names.SSM_NAME
_SSM_SELECTOR = aws_names.SSM_SELECTOR
_SECRET_NAME = aws_names.SM_NAME
_SECRET_FIELD = re.compile(r"[^:]{0,256}\Z")
# Base64, maybe wrapped: line breaks, spaces and tabs only (not every Unicode space).
_B64 = re.compile(r"[A-Za-z0-9+/=\n\r \t]+\Z")


@dataclass(frozen=True)
class SsmRef:
    name: str
    selector: str | None = None
    region: str | None = None
    partition: str | None = None
    account: str | None = None

    @property
    def query(self) -> str:
        """The name as GetParameters takes it, with ``:version`` or ``:label``."""
        return f"{self.name}:{self.selector}" if self.selector else self.name


@dataclass(frozen=True)
class SecretRef:
    secret_id: str
    json_key: str | None = None
    stage: str | None = None
    version_id: str | None = None
    region: str | None = None
    partition: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class AesdkRef:
    ciphertext: str


Ref = SsmRef | SecretRef | AesdkRef


def _bad(what: str, hint: str) -> DataError:
    return DataError(what, hint=hint)


def _ssm(name: str, selector: str | None, **where: str | None) -> SsmRef:
    if not _SSM_NAME.match(name) or name.startswith("//"):
        raise _bad("an ssm reference names an invalid parameter", "write ssm:NAME[:VERSION|:LABEL]")
    if selector is not None and not _SSM_SELECTOR.match(selector):
        raise _bad(
            "an ssm reference has an invalid version or label",
            "write ssm:NAME[:VERSION|:LABEL]",
        )
    return SsmRef(name=name, selector=selector, **where)


def _secret_fields(secret_id: str, fields: list[str], **where: str | None) -> SecretRef:
    if len(fields) > 3 or not all(_SECRET_FIELD.match(f) for f in fields):
        raise _bad(
            "a secretsmanager reference has too many or invalid fields",
            "write secretsmanager:NAME[:JSON_KEY[:STAGE[:VERSION_ID]]]",
        )
    fields = fields + [""] * (3 - len(fields))
    return SecretRef(
        secret_id=secret_id,
        json_key=fields[0] or None,
        stage=fields[1] or None,
        version_id=fields[2] or None,
        **where,
    )


def parse_reference(value: str) -> Ref | None:
    """Parse ``value``; None when it is not a reference at all."""
    if value.startswith("ssm:"):
        body = value[4:]
        name, _, selector = body.partition(":")
        return _ssm(name, selector if _ else None)
    if value.startswith("secretsmanager:"):
        parts = value[len("secretsmanager:") :].split(":")
        if not _SECRET_NAME.match(parts[0]):
            raise _bad(
                "a secretsmanager reference names an invalid secret",
                "write secretsmanager:NAME[:JSON_KEY[:STAGE[:VERSION_ID]]]",
            )
        return _secret_fields(parts[0], parts[1:])
    if is_aesdk(value):
        body = value[len(AESDK_PREFIX) :]
        if not body or not _B64.match(body):
            raise _bad("an aesdk: value is not base64", "produce it with secrets-agent encrypt")
        return AesdkRef(ciphertext=body)
    if value.startswith("arn:") and looks_like_reference(value):
        return _parse_arn(value)
    return None


def _parse_arn(value: str) -> Ref:
    arn = aws_names.parse_arn(value)
    if arn is None or arn[1] not in ("ssm", "secretsmanager"):
        raise _bad(
            "an ARN reference is malformed",
            "write arn:PARTITION:SERVICE:REGION:ACCOUNT:... as the console shows it",
        )
    where: dict[str, str | None] = {
        "region": arn[2],
        "partition": arn[0],
        "account": arn[3],
    }
    rest = arn[4]
    if arn[1] == "ssm":
        if not rest.startswith("parameter/"):
            raise _bad("an SSM ARN reference does not name a parameter", "use ...:parameter/NAME")
        body = rest[len("parameter/") :]
        name, _, selector = body.partition(":")
        if "/" in name:
            name = "/" + name
        return _ssm(name, selector if _ else None, **where)
    if not rest.startswith("secret:"):
        raise _bad("a Secrets Manager ARN reference does not name a secret", "use ...:secret:NAME")
    parts = rest[len("secret:") :].split(":")
    if not _SECRET_NAME.match(parts[0]):
        raise _bad("a Secrets Manager ARN reference names an invalid secret", "copy the ARN again")
    secret_arn = value[: len(value) - len(rest)] + "secret:" + parts[0]
    return _secret_fields(secret_arn, parts[1:], **where)


def find_references(environ: Mapping[str, str]) -> dict[str, Ref]:
    """Every variable whose whole value is a reference; raises DataError naming the variable."""
    found: dict[str, Ref] = {}
    for var, value in environ.items():
        if not looks_like_reference(value):
            continue
        try:
            ref = parse_reference(value)
        except DataError as exc:
            raise DataError(f"variable {var}: {exc.message}", hint=exc.hint) from exc
        if ref is not None:
            found[var] = ref
    return found
