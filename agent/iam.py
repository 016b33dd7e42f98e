"""Render the least-privilege IAM policy for a configuration. Pure: no AWS call, no boto3.

``needs_from_environment`` reads the same settings and references the agent reads;
``statements`` turns them into exactly the statements those calls require; ``render_json`` and
``render_terraform`` print them. ``iam/*.json.tftpl`` hold the same statements, one mode each,
for Terraform's ``templatefile()``; tests keep the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.errors import ConfigError

#: Stands for the account in a Terraform rendering without ``--account-id``. ``<`` appears in no
#: parameter, secret or key name, so the substitution cannot touch anything else.
ACCOUNT_PLACEHOLDER = "<account-id>"
TF_ACCOUNT = "${data.aws_caller_identity.secrets_agent.account_id}"
#: Actions whose only valid resource is "*" (no resource-level permission exists).
STAR_ONLY_ACTIONS = frozenset(
    {"ssm:DescribeParameters", "secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"}
)
#: Context keys of an aesdk: message as KMS sees them: ours, plus the one the default signed
#: algorithm suite adds.
AESDK_CONTEXT_KEYS = ("aws-crypto-public-key", "secrets-agent:name")

DESCRIBE_NOTE = (
    "Name-prefix mode: ssm:DescribeParameters accepts only \"*\" and reveals every parameter "
    "name (not value) in the account and region; a path prefix (/app/env) avoids it."
)

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+\Z")
_ACCOUNT = re.compile(r"\d{12}\Z")
_KEY_ARN = re.compile(
    r"arn:(?P<partition>aws(-[a-z]+)*):kms:(?P<region>[a-z]{2}(-[a-z]+)+-\d+):"
    r"(?P<account>\d{12}):(?P<kind>key|alias)/(?P<id>.+)\Z"
)
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}\Z")
# What a prefix may hold; anything else (``*``, ``?``, ``$``) would widen or break a pattern.
_SSM_PREFIX = re.compile(r"[A-Za-z0-9_.\-/]{1,2048}\Z")
_SECRET_PREFIX = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}\Z")
_SEPARATOR_ENDINGS = (".", "/", "-", "_")


def partition_of(region: str) -> str:
    """The ARN partition of a region (``cn-north-1`` -> ``aws-cn``)."""
    for start, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
    ):
        if region.startswith(start):
            return partition
    return "aws"


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
    """What a configuration reads. Names carry no ``:version``/``:label`` selector."""

    home: Where
    ssm_path: str | None = None
    ssm_name_prefix: str | None = None
    parameters: tuple[tuple[Where, str], ...] = ()
    secrets_prefix: str | None = None
    secrets: tuple[tuple[Where, str], ...] = ()  # (where, name or full ARN)
    aesdk_keys: tuple[str, ...] = ()
    aesdk_names: tuple[str, ...] | None = None  # None: any variable (prefix loads may hold some)
    service_keys: tuple[str, ...] = ()  # customer-managed keys of SecureStrings and secrets


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
    body = prefix.removeprefix("/")
    if prefix.endswith(_SEPARATOR_ENDINGS):
        return (where.arn("ssm", f"parameter/{body}*"),)
    return (where.arn("ssm", f"parameter/{body}.*"), where.arn("ssm", f"parameter/{body}/*"))


def secret_prefix_pattern(where: Where, prefix: str) -> str:
    """Secrets named ``prefix/`` + anything; never ``prefix*``, which matches ``prefix-other``."""
    if prefix.endswith(_SEPARATOR_ENDINGS):
        return where.arn("secretsmanager", f"secret:{prefix}*")
    return where.arn("secretsmanager", f"secret:{prefix}/*")


def secret_pattern(where: Where, secret_id: str) -> str:
    """A full ARN as it is; a name gets the six-character suffix every secret ARN ends in."""
    if secret_id.startswith("arn:"):
        return secret_id if _SECRET_SUFFIX.search(secret_id) else secret_id + "-??????"
    return where.arn("secretsmanager", f"secret:{secret_id}-??????")


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def _key_region(arn: str) -> str:
    match = _KEY_ARN.match(arn)
    return match["region"] if match else ""


# ----------------------------------------------------------------------------- statements


def statements(needs: Needs) -> list[Statement]:
    """Exactly the statements the calls of ``needs`` require, in a stable order."""
    out: list[Statement] = []
    home = needs.home
    ssm_scopes: list[tuple[str, str]] = []  # (region, PARAMETER_ARN pattern) for the CMK statement
    if needs.ssm_path:
        by_path = path_patterns(home, needs.ssm_path)
        out.append(Statement("ReadParametersUnderPath", ("ssm:GetParametersByPath",), by_path))
        ssm_scopes.append((home.region, by_path[1]))
    if needs.ssm_name_prefix:
        patterns = name_prefix_patterns(home, needs.ssm_name_prefix)
        out.append(Statement("ListParameterNames", ("ssm:DescribeParameters",), ("*",)))
        out.append(Statement("ReadParametersByNamePrefix", ("ssm:GetParameters",), patterns))
        ssm_scopes.extend((home.region, p) for p in patterns)
    if needs.parameters:
        arns = _unique(parameter_arn(w, n) for w, n in needs.parameters)
        out.append(Statement("ReadReferencedParameters", ("ssm:GetParameters",), arns))
        ssm_scopes.extend((w.region, parameter_arn(w, n)) for w, n in needs.parameters)
    sm_scopes: list[tuple[str, str]] = []
    if needs.secrets_prefix:
        pattern = secret_prefix_pattern(home, needs.secrets_prefix)
        # BatchGetSecretValue with a name filter also needs ListSecrets, and GetSecretValue on
        # each secret it returns; ListSecrets alone is the fallback path and the change check.
        listing = ("secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets")
        out.append(Statement("ListSecretsUnderPrefix", listing, ("*",)))
        out.append(
            Statement("ReadSecretsUnderPrefix", ("secretsmanager:GetSecretValue",), (pattern,))
        )
        sm_scopes.append((home.region, pattern))
    if needs.secrets:
        arns = _unique(secret_pattern(w, s) for w, s in needs.secrets)
        out.append(Statement("ReadReferencedSecrets", ("secretsmanager:GetSecretValue",), arns))
        sm_scopes.extend((w.region, secret_pattern(w, s)) for w, s in needs.secrets)
    out.extend(_service_key_statements(needs.service_keys, ssm_scopes, sm_scopes))
    if needs.aesdk_keys:
        out.append(_aesdk_statement(needs))
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
            region_keys = _unique(k for k in keys if _key_region(k) == region)
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


# ----------------------------------------------------------------------------- configuration


def _region(value: str | None, *, what: str) -> str:
    if not value or not _REGION.match(value):
        raise ConfigError(
            f"{what} is not an AWS region ({value!r})",
            hint="set AWS_REGION or AWS_DEFAULT_REGION to the region the task runs in",
        )
    return value


def _check_service_key(arn: str, regions: set[str]) -> str:
    match = _KEY_ARN.match(arn)
    if match is None or match["kind"] == "alias" or not re.fullmatch(r"[A-Za-z0-9-]+", match["id"]):
        hint = "give the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
        if match is not None and match["id"].startswith("aws/"):
            hint = "AWS managed keys (aws/ssm, aws/secretsmanager) need no statement: leave it out"
        raise ConfigError(
            f"--kms-key-arn {arn!r} is not a KMS key ARN; an alias in Resource never matches "
            "the key behind it",
            hint=hint,
        )
    if match["region"] not in regions:
        raise ConfigError(
            f"--kms-key-arn {arn!r} is in {match['region']}, where the agent reads no parameter "
            "or secret",
            hint="a service uses keys of its own region only; check the key and AWS_REGION",
        )
    return arn


def needs_from_environment(
    environ: Mapping[str, str], *, account_id: str | None, kms_key_arns: Sequence[str] = ()
) -> Needs:
    """What the agent would read with ``environ``, as the agent itself parses it."""
    from agent.config import load_settings
    from agent.references import AesdkRef, SecretRef, SsmRef, find_references

    settings = load_settings(environ)
    region = _region(
        environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
        what="AWS_REGION / AWS_DEFAULT_REGION",
    )
    if account_id is not None and not _ACCOUNT.match(account_id):
        raise ConfigError(f"--account-id {account_id!r} is not a 12-digit AWS account id")
    home = Where(partition_of(region), region, account_id or ACCOUNT_PLACEHOLDER)
    refs = find_references(environ)
    parameters: list[tuple[Where, str]] = []
    secrets: list[tuple[Where, str]] = []
    aesdk_vars: list[str] = []
    for var, ref in sorted(refs.items()):
        if isinstance(ref, AesdkRef):
            aesdk_vars.append(var)
            continue
        ref_region = _region(ref.region, what=f"the region of {var}") if ref.region else region
        where = Where(
            ref.partition or partition_of(ref_region), ref_region, ref.account or home.account
        )
        if isinstance(ref, SsmRef):
            parameters.append((where, ref.name))
        elif isinstance(ref, SecretRef):
            secrets.append((where, ref.secret_id))
    ssm_prefix = settings.parameter_store_prefix
    sm_prefix = settings.secrets_manager_prefix
    for var, value, pattern in (
        ("PARAMETER_STORE_PREFIX", ssm_prefix, _SSM_PREFIX),
        ("SECRETS_MANAGER_PREFIX", sm_prefix, _SECRET_PREFIX),
    ):
        if value is not None and not pattern.match(value):
            raise ConfigError(
                f"{var} holds characters no parameter or secret name can hold",
                hint=f"fix {var}; a wildcard in it would widen the policy",
            )
    any_prefix = bool(ssm_prefix or sm_prefix)
    if aesdk_vars and not settings.kms_key_arns:
        raise ConfigError(
            "aesdk: values are set (" + ", ".join(aesdk_vars) + ") but no key may decrypt them",
            hint="set SECRETS_AGENT_KMS_KEY_ARNS to the key ARNs that encrypted them",
        )
    if not (any_prefix or parameters or secrets or aesdk_vars):
        raise ConfigError(
            "nothing to grant: no prefix and no reference is configured",
            hint="run iam-policy with the task's environment (PARAMETER_STORE_PREFIX, ...)",
        )
    read_regions = {w.region for w, _ in (*parameters, *secrets)}
    if any_prefix:
        read_regions.add(region)
    service_keys = tuple(_check_service_key(arn, read_regions) for arn in kms_key_arns)
    return Needs(
        home=home,
        ssm_path=ssm_prefix if ssm_prefix and ssm_prefix.startswith("/") else None,
        ssm_name_prefix=ssm_prefix if ssm_prefix and not ssm_prefix.startswith("/") else None,
        parameters=tuple(parameters),
        secrets_prefix=sm_prefix,
        secrets=tuple(secrets),
        # A parameter or secret may hold an aesdk: value too, bound to the variable it sets.
        aesdk_keys=settings.kms_key_arns,
        aesdk_names=None if any_prefix else tuple(sorted(refs)),
        service_keys=service_keys,
    )


# ----------------------------------------------------------------------------- output


def render_json(needs: Needs) -> str:
    text: str = json.dumps(policy_document(needs), indent=2)
    if ACCOUNT_PLACEHOLDER in text:
        raise ConfigError(
            "the JSON policy needs the account id",
            hint="pass --account-id 123456789012, or use --format terraform, which takes it "
            "from aws_caller_identity",
        )
    return text + "\n"


def _summary(environ: Mapping[str, str], needs: Needs) -> str:
    parts = [
        f"{var}={json.dumps(environ[var])}"
        for var in ("PARAMETER_STORE_PREFIX", "SECRETS_MANAGER_PREFIX")
        if environ.get(var)
    ]
    from agent.references import find_references

    count = len(find_references(environ))
    if count:
        parts.append(f"{count} reference(s)")
    return ", ".join(parts) + f", region {needs.home.region}"


def render_for_environment(
    environ: Mapping[str, str],
    *,
    fmt: str,
    account_id: str | None,
    kms_key_arns: Sequence[str] = (),
) -> str:
    """The policy for the configuration in ``environ``, as ``json`` or ``terraform``."""
    needs = needs_from_environment(environ, account_id=account_id, kms_key_arns=kms_key_arns)
    if fmt == "json":
        return render_json(needs)
    if fmt == "terraform":
        from agent.iam_terraform import render_terraform

        notes = [DESCRIBE_NOTE] if needs.ssm_name_prefix else []
        return render_terraform(
            policy_document(needs), summary=_summary(environ, needs), notes=notes
        )
    raise ConfigError(f"unknown policy format {fmt!r}", hint="use --format json or terraform")
