"""Render the least-privilege IAM policy for a configuration. Pure: no AWS call, no boto3.

``needs_from_environment`` reads the settings and references the way the agent reads them;
``secrets_agent.policy.statements`` turns them into exactly the statements those calls require;
``render_json`` and ``secrets_agent.policy.terraform`` print them. ``iam/*.json.tftpl`` hold the
same
statements, one mode each, for Terraform's ``templatefile()``; tests keep the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from secrets_agent.core.aws_names import ECS_NAME, KMS_KEY_ONLY_ARN, region_of
from secrets_agent.core.errors import ConfigError, NotFoundError
from secrets_agent.core.references import Ref, SsmRef
from secrets_agent.policy.statements import (
    ACCOUNT_PLACEHOLDER,
    KEY_ARN,
    REGION_PATTERN,
    STAR_ONLY_ACTIONS,
    TF_ACCOUNT,
    Needs,
    Statement,
    Where,
    parameter_arn,
    partition_of,
    policy_document,
    statements,
)

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "STAR_ONLY_ACTIONS",
    "TF_ACCOUNT",
    "Needs",
    "Statement",
    "Where",
    "needs_from_environment",
    "parameter_arn",
    "policy_document",
    "render_for_environment",
    "render_json",
    "statements",
]

#: Stands for the account in a Terraform rendering without ``--account-id``. ``<`` appears in no
#: parameter, secret or key name, so the substitution cannot touch anything else.

DESCRIBE_NOTE = (
    "Name-prefix mode: ssm:DescribeParameters accepts only \"*\" and reveals every parameter "
    "name (not value) in the account and region; a path prefix (/app/env) avoids it."
)

_ACCOUNT = re.compile(r"\d{12}\Z")


# ----------------------------------------------------------------------------- configuration


def _region(value: str | None, *, what: str) -> str:
    if not value or not REGION_PATTERN.match(value):
        raise ConfigError(
            f"{what} is not set" if not value else f"{what} is not an AWS region ({value!r})",
            hint="set AWS_REGION or AWS_DEFAULT_REGION to the region the task runs in",
        )
    return value


def service_key_arn(arn: str, regions: set[str]) -> str:
    match = KEY_ARN.match(arn)
    if match is None or not KMS_KEY_ONLY_ARN.match(arn):
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


def _check_ssm_account(var: str, ref: SsmRef, account_id: str | None) -> None:
    """Refuse an SSM ARN of another account, as ``exec`` does (66), when the account is known.

    Without ``--account-id`` the statement names the caller's account, the one ``exec`` reads:
    a reference to another account is then refused by ``exec`` alone.
    """
    if ref.account is None or account_id is None or ref.account == account_id:
        return
    raise NotFoundError(
        f"variable {var} references SSM parameter {ref.name!r} of account {ref.account}, "
        f"but the agent reads SSM references by name in the task's own account "
        f"({account_id}, from --account-id)",
        hint="reference a parameter of the task's own account (cross-account SSM ARNs "
        "are not supported)",
    )


def _ecs_needs(
    settings: Any, home: Where, *, ecs_cluster: str | None, ecs_service: str | None
) -> tuple[tuple[Where, str, str] | None, bool]:
    """Redeploy mode's service, from the settings or --ecs-cluster/--ecs-service."""
    if not (settings.supervise and settings.on_change == "redeploy"):
        return None, False
    cluster = settings.ecs_cluster or ecs_cluster
    service = settings.ecs_service or ecs_service
    for flag, value in (("--ecs-cluster", cluster), ("--ecs-service", service)):
        if value is not None and not re.fullmatch(ECS_NAME, value):
            raise ConfigError(
                f"{flag} {value!r} is not an ECS name", hint="give the name, not the ARN"
            )
    if not cluster or not service:
        raise ConfigError(
            "SECRETS_AGENT_ON_CHANGE=redeploy: the policy names the one service the task may "
            "redeploy, but the cluster or the service is not known here",
            hint="pass --ecs-cluster and --ecs-service (or set SECRETS_AGENT_ECS_CLUSTER and "
            "SECRETS_AGENT_ECS_SERVICE)",
        )
    # A task that is not told its service finds it itself: on Fargate through DescribeTasks.
    return (home, cluster, service), settings.ecs_service is None


def needs_from_environment(
    environ: Mapping[str, str],
    *,
    account_id: str | None,
    kms_key_arns: Sequence[str] = (),
    ecs_cluster: str | None = None,
    ecs_service: str | None = None,
) -> Needs:
    """What the agent would read with ``environ``: the same Plan ``exec`` fetches."""
    from secrets_agent.core.plan import make_plan
    from secrets_agent.core.settings import load_settings

    settings = load_settings(environ)
    plan = make_plan(settings, environ)
    home = _home(environ, account_id)
    region = home.region
    refs = plan.refs
    wanted = _reference_needs(
        refs, region=region, home=home, account_id=account_id, supervise=settings.supervise
    )
    parameters, secrets, described = wanted.parameters, wanted.secrets, wanted.described
    # Layered prefixes: each prefix of a comma-separated list is granted on its own. The
    # settings refused a prefix with characters no name can hold (a wildcard would widen the
    # policy) before this runs.
    ssm_prefixes = plan.ssm_prefixes
    sm_prefixes = plan.sm_prefixes
    any_prefix = bool(ssm_prefixes or sm_prefixes)
    _check_grantable(wanted, any_prefix=any_prefix, kms_key_arns=settings.kms_key_arns)
    read_regions = {w.region for w, _ in (*parameters, *secrets)}
    if any_prefix:
        read_regions.add(region)
    service_keys = tuple(service_key_arn(arn, read_regions) for arn in kms_key_arns)
    ecs, ecs_lookup = _ecs_needs(
        settings, home, ecs_cluster=ecs_cluster, ecs_service=ecs_service
    )
    return Needs(
        home=home,
        ssm_path=tuple(p for p in ssm_prefixes if p.startswith("/")),
        ssm_name_prefix=tuple(p for p in ssm_prefixes if not p.startswith("/")),
        parameters=tuple(parameters),
        secrets_prefix=sm_prefixes,
        secrets=tuple(secrets),
        described_secrets=tuple(described),
        # A parameter or secret may hold an aesdk: value too, bound to the variable it sets.
        aesdk_keys=settings.kms_key_arns,
        aesdk_names=None if any_prefix else tuple(sorted(refs)),
        service_keys=service_keys,
        ecs_service=ecs,
        ecs_task_lookup=ecs_lookup,
    )


@dataclass
class _ReferenceNeeds:
    """What the references ask for, each list in variable order."""

    parameters: list[tuple[Where, str]] = field(default_factory=list)
    secrets: list[tuple[Where, str]] = field(default_factory=list)
    described: list[tuple[Where, str]] = field(default_factory=list)
    aesdk_vars: list[str] = field(default_factory=list)


def _reference_needs(
    refs: Mapping[str, Ref],
    *,
    region: str,
    home: Where,
    account_id: str | None,
    supervise: bool,
) -> _ReferenceNeeds:
    """The parameters, secrets (and, in supervise mode, their versions) the references read."""
    from secrets_agent.core.references import AesdkRef, SecretRef

    wanted = _ReferenceNeeds()
    for var, ref in sorted(refs.items()):
        if isinstance(ref, AesdkRef):
            wanted.aesdk_vars.append(var)
            continue
        ref_region = _region(ref.region, what=f"the region of {var}") if ref.region else region
        partition = ref.partition or partition_of(ref_region)
        if isinstance(ref, SsmRef):
            _check_ssm_account(var, ref, account_id)
            # The agent reads an SSM reference by name, so in the task's own account (and
            # refuses an answer from any other): grant that, never the ARN's account.
            wanted.parameters.append((Where(partition, ref_region, home.account), ref.name))
        elif isinstance(ref, SecretRef):
            # Secrets Manager reads an ARN as written, in whichever account it names.
            where = Where(partition, ref_region, ref.account or home.account)
            wanted.secrets.append((where, ref.secret_id))
            if supervise and not ref.version_id:
                wanted.described.append((where, ref.secret_id))  # a check asks for its version
    return wanted


def _home(environ: Mapping[str, str], account_id: str | None) -> Where:
    """The task's own partition, region and account (a placeholder when not given)."""
    region = _region(
        region_of(environ),
        what="AWS_REGION / AWS_DEFAULT_REGION",
    )
    if account_id is not None and not _ACCOUNT.match(account_id):
        raise ConfigError(f"--account-id {account_id!r} is not a 12-digit AWS account id")
    return Where(partition_of(region), region, account_id or ACCOUNT_PLACEHOLDER)


def _check_grantable(
    wanted: _ReferenceNeeds, *, any_prefix: bool, kms_key_arns: Sequence[str]
) -> None:
    """ConfigError when aesdk: values have no key, or when there is nothing to grant at all."""
    if wanted.aesdk_vars and not kms_key_arns:
        raise ConfigError(
            "aesdk: values are set (" + ", ".join(wanted.aesdk_vars) + ") but no key may "
            "decrypt them",
            hint="set SECRETS_AGENT_KMS_KEY_ARNS to the key ARNs that encrypted them",
        )
    if not (any_prefix or wanted.parameters or wanted.secrets or wanted.aesdk_vars):
        raise ConfigError(
            "nothing to grant: no prefix and no reference is configured",
            hint="run iam-policy with the task's environment (PARAMETER_STORE_PREFIX, ...)",
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
    from secrets_agent.core.references import find_references

    count = len(find_references(environ))
    if count:
        parts.append(f"{count} reference(s)")
    return ", ".join(parts) + f", region {needs.home.region}"


#: IAM's limit on a customer managed policy: characters of the document without whitespace.
MANAGED_POLICY_MAX = 6144


def _check_policy_size(needs: Needs) -> None:
    """78 when IAM would refuse the policy: a task role cannot be given what it needs in one
    managed policy, and a policy split by hand is how a prefix gets widened to ``*``."""
    document = policy_document(needs)
    # Measured as IAM counts it, with a 12-digit account id where the placeholder stands.
    size = len(
        json.dumps(document, separators=(",", ":")).replace(ACCOUNT_PLACEHOLDER, "0" * 12)
    )
    if size > MANAGED_POLICY_MAX:
        raise ConfigError(
            f"the policy is {size} characters without whitespace, over IAM's limit of "
            f"{MANAGED_POLICY_MAX} for a managed policy",
            hint="group the secrets under fewer prefixes (one path instead of many references), "
            "or split the configuration across task roles",
        )


def render_for_environment(
    environ: Mapping[str, str],
    *,
    fmt: str,
    account_id: str | None,
    kms_key_arns: Sequence[str] = (),
    ecs_cluster: str | None = None,
    ecs_service: str | None = None,
) -> str:
    """The policy for the configuration in ``environ``, as ``json`` or ``terraform``."""
    needs = needs_from_environment(
        environ,
        account_id=account_id,
        kms_key_arns=kms_key_arns,
        ecs_cluster=ecs_cluster,
        ecs_service=ecs_service,
    )
    _check_policy_size(needs)
    if fmt == "json":
        return render_json(needs)
    if fmt == "terraform":
        from secrets_agent.policy.terraform import render_terraform

        notes = [DESCRIBE_NOTE] if needs.ssm_name_prefix else []
        return render_terraform(
            policy_document(needs), summary=_summary(environ, needs), notes=notes
        )
    raise ConfigError(f"unknown policy format {fmt!r}", hint="use --format json or terraform")
