"""The statements of the least-privilege policy, from what a configuration reads. Pure.

``Needs`` says what is read (prefixes, references, keys); ``statements`` gives exactly the
statements AWS checks for the calls the agent makes for it. ARN patterns follow each
source's own boundary rule, so a grant never reaches past a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from secrets_agent.core import aws_names

#: Actions whose only valid resource is "*" (no resource-level permission exists).
STAR_ONLY_ACTIONS = frozenset(
    {"ssm:DescribeParameters", "secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"}
)
#: Context keys of an aesdk: message as KMS sees them: ours, plus the one the default signed
#: algorithm suite adds.
AESDK_CONTEXT_KEYS = ("aws-crypto-public-key", "secrets-agent:name")

#: The account in a rendered policy when none is given; Terraform gets the caller's.
ACCOUNT_PLACEHOLDER = "<account-id>"
TF_ACCOUNT = "${data.aws_caller_identity.secrets_agent.account_id}"
REGION_PATTERN = aws_names.REGION
KEY_ARN = aws_names.KMS_KEY_ARN
partition_of = aws_names.partition_of


@dataclass(frozen=True)
class Where:
    """The partition, region and account a resource lives in."""

    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


@dataclass(frozen=True)
class Needs:
    """What a configuration reads. Names carry no ``:version``/``:label`` selector.

    A prefix field holds one prefix, or a tuple of them (layered prefixes): each is granted on
    its own, and nothing between them.
    """

    home: Where
    ssm_path: str | tuple[str, ...] | None = None
    ssm_name_prefix: str | tuple[str, ...] | None = None
    parameters: tuple[tuple[Where, str], ...] = ()
    secrets_prefix: str | tuple[str, ...] | None = None
    secrets: tuple[tuple[Where, str], ...] = ()  # (where, name or full ARN)
    # Supervise mode: referenced secrets whose version a change check asks for (DescribeSecret).
    described_secrets: tuple[tuple[Where, str], ...] = ()
    aesdk_keys: tuple[str, ...] = ()
    aesdk_names: tuple[str, ...] | None = None  # None: any variable (prefix loads may hold some)
    service_keys: tuple[str, ...] = ()  # customer-managed keys of SecureStrings and secrets
    # SECRETS_AGENT_ON_CHANGE=redeploy: (where, cluster name, service name), and whether the task
    # finds its service itself (then, on Fargate, through DescribeTasks on its own task).
    ecs_service: tuple[Where, str, str] | None = None
    ecs_task_lookup: bool = False


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    # operator -> condition key -> values
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": list(self.actions),
            "Resource": list(self.resources),
        }
        if self.conditions:
            cond: dict[str, dict[str, str | list[str]]] = {}
            for operator, key, values in self.conditions:
                cond.setdefault(operator, {})[key] = values[0] if len(values) == 1 else list(values)
            out["Condition"] = cond
        return out


# ----------------------------------------------------------------------------- ARN patterns


def parameter_arn(where: Where, name: str) -> str:
    """``/a/b`` -> ``...:parameter/a/b``; ``flat.name`` -> ``...:parameter/flat.name``."""
    return where.arn("ssm", "parameter/" + name.removeprefix("/"))


def path_patterns(where: Where, path: str) -> tuple[str, str]:
    """GetParametersByPath is checked against the path itself; ``/*`` covers a trailing ``/``."""
    body = path.strip("/")
    if not body:
        return where.arn("ssm", "parameter/"), where.arn("ssm", "parameter/*")
    return where.arn("ssm", f"parameter/{body}"), where.arn("ssm", f"parameter/{body}/*")


def name_prefix_patterns(where: Where, prefix: str) -> tuple[str, ...]:
    """The agent's boundary rule: ``prefix.`` or ``prefix/``, or anything after a separator."""
    starts = aws_names.starts_under(prefix, aws_names.SSM_NAME_PREFIX_SEPARATORS)
    return tuple(where.arn("ssm", f"parameter/{start.removeprefix('/')}*") for start in starts)


def secret_prefix_pattern(where: Where, prefix: str) -> str:
    """Secrets named ``prefix/`` + anything; never ``prefix*``, which matches ``prefix-other``."""
    (start,) = aws_names.starts_under(prefix, aws_names.SM_PREFIX_SEPARATORS)
    return where.arn("secretsmanager", f"secret:{start}*")


def secret_pattern(where: Where, secret_id: str) -> str:
    """A full ARN as it is; a name gets the six-character suffix every secret ARN ends in."""
    if secret_id.startswith("arn:"):
        if aws_names.SECRET_ARN_SUFFIX.search(secret_id):
            return secret_id
        return secret_id + aws_names.SECRET_ARN_SUFFIX_WILDCARD
    return where.arn("secretsmanager", f"secret:{secret_id}{aws_names.SECRET_ARN_SUFFIX_WILDCARD}")


def _many(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


# ----------------------------------------------------------------------------- statements


def statements(needs: Needs) -> list[Statement]:
    """Exactly the statements the calls of ``needs`` require, in a stable order."""
    out: list[Statement] = []
    home = needs.home
    ssm_scopes: list[tuple[str, str]] = []  # (region, PARAMETER_ARN pattern) for the CMK statement
    paths = _many(needs.ssm_path)
    if paths:
        by_path = tuple(p for path in paths for p in path_patterns(home, path))
        out.append(Statement("ReadParametersUnderPath", ("ssm:GetParametersByPath",), by_path))
        ssm_scopes.extend((home.region, path_patterns(home, path)[1]) for path in paths)
    name_prefixes = _many(needs.ssm_name_prefix)
    if name_prefixes:
        patterns = tuple(p for n in name_prefixes for p in name_prefix_patterns(home, n))
        out.append(Statement("ListParameterNames", ("ssm:DescribeParameters",), ("*",)))
        out.append(Statement("ReadParametersByNamePrefix", ("ssm:GetParameters",), patterns))
        ssm_scopes.extend((home.region, p) for p in patterns)
    if needs.parameters:
        arns = _unique(parameter_arn(w, n) for w, n in needs.parameters)
        out.append(Statement("ReadReferencedParameters", ("ssm:GetParameters",), arns))
        ssm_scopes.extend((w.region, parameter_arn(w, n)) for w, n in needs.parameters)
    sm_scopes: list[tuple[str, str]] = []
    secret_prefixes = _many(needs.secrets_prefix)
    if secret_prefixes:
        sm_patterns = tuple(secret_prefix_pattern(home, p) for p in secret_prefixes)
        # BatchGetSecretValue with a name filter also needs ListSecrets, and GetSecretValue on
        # each secret it returns; ListSecrets alone is the fallback path and the change check.
        listing = ("secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets")
        out.append(Statement("ListSecretsUnderPrefix", listing, ("*",)))
        out.append(
            Statement("ReadSecretsUnderPrefix", ("secretsmanager:GetSecretValue",), sm_patterns)
        )
        sm_scopes.extend((home.region, pattern) for pattern in sm_patterns)
    if needs.secrets:
        arns = _unique(secret_pattern(w, s) for w, s in needs.secrets)
        out.append(Statement("ReadReferencedSecrets", ("secretsmanager:GetSecretValue",), arns))
        sm_scopes.extend((w.region, secret_pattern(w, s)) for w, s in needs.secrets)
    if needs.described_secrets:
        arns = _unique(secret_pattern(w, s) for w, s in needs.described_secrets)
        out.append(
            Statement("CheckReferencedSecretVersions", ("secretsmanager:DescribeSecret",), arns)
        )
    out.extend(_service_key_statements(needs.service_keys, ssm_scopes, sm_scopes))
    if needs.aesdk_keys:
        out.append(_aesdk_statement(needs))
    out.extend(_ecs_statements(needs))
    return out


def _ecs_statements(needs: Needs) -> list[Statement]:
    """Redeploy mode: read and redeploy the one service; find it from the task's own group."""
    if needs.ecs_service is None:
        return []
    where, cluster, service = needs.ecs_service
    out = [
        Statement(
            "RedeployOwnService",
            ("ecs:DescribeServices", "ecs:UpdateService"),
            (where.arn("ecs", f"service/{cluster}/{service}"),),
        )
    ]
    if needs.ecs_task_lookup:
        out.append(
            Statement(
                "FindServiceOfOwnTask",
                ("ecs:DescribeTasks",),
                (where.arn("ecs", f"task/{cluster}/*"),),
            )
        )
    return out


def _service_key_statements(
    keys: Sequence[str], ssm_scopes: Sequence[tuple[str, str]], sm_scopes: Sequence[tuple[str, str]]
) -> list[Statement]:
    out: list[Statement] = []
    for service, context_key, scopes, sid in (
        ("ssm", "kms:EncryptionContext:PARAMETER_ARN", ssm_scopes, "DecryptSecureStrings"),
        ("secretsmanager", "kms:EncryptionContext:SecretARN", sm_scopes, "DecryptSecrets"),
    ):
        for region in sorted({r for r, _ in scopes}):
            region_keys = _unique(k for k in keys if aws_names.kms_region(k) == region)
            if not region_keys:
                continue
            suffix = "" if len({r for r, _ in scopes}) == 1 else region.title().replace("-", "")
            out.append(
                Statement(
                    sid + suffix,
                    ("kms:Decrypt",),
                    region_keys,
                    (
                        ("StringEquals", "kms:ViaService", (f"{service}.{region}.amazonaws.com",)),
                        ("StringLike", context_key, _unique(p for r, p in scopes if r == region)),
                    ),
                )
            )
    return out


def _aesdk_statement(needs: Needs) -> Statement:
    name_key = "kms:EncryptionContext:secrets-agent:name"
    condition: tuple[str, str, tuple[str, ...]]
    if needs.aesdk_names is None:
        condition = ("Null", name_key, ("false",))
    else:
        condition = ("StringEquals", name_key, _unique(needs.aesdk_names))
    return Statement(
        "DecryptAesdkValues",
        ("kms:Decrypt",),
        _unique(needs.aesdk_keys),
        (
            condition,
            ("ForAllValues:StringEquals", "kms:EncryptionContextKeys", AESDK_CONTEXT_KEYS),
        ),
    )


def policy_document(needs: Needs) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": [s.as_dict() for s in statements(needs)]}
