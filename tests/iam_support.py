"""Helpers for the IAM tests: a small policy evaluator, static checks, and the mapping from
the agent's logged AWS calls to the (action, resource, context) checks AWS makes for them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.policy.needs import STAR_ONLY_ACTIONS

ACCOUNT = "123456789012"  # moto's account


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, *, case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z", 0 if case else re.IGNORECASE)


def matches(pattern: str, value: str, *, case: bool = True) -> bool:
    return _glob(pattern, case=case).match(value) is not None


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a call: action on resource, with the request context."""

    action: str
    resource: str
    context: Mapping[str, object] = field(default_factory=dict)
    why: str = ""


def _condition_holds(
    operator: str, key: str, wanted: list[str], context: Mapping[str, object]
) -> bool:
    present = key in context
    actual = context.get(key)
    if operator == "Null":
        return (not present) == (wanted[0] == "true")
    if operator.startswith("ForAllValues:"):
        inner = operator.split(":", 1)[1]
        values = as_list(actual) if present else []
        return all(_condition_holds(inner, key, wanted, {key: v}) for v in values)
    if not present:
        return False
    if operator == "StringEquals":
        return any(str(actual) == w for w in wanted)
    if operator == "StringLike":
        return any(matches(w, str(actual)) for w in wanted)
    raise AssertionError(f"the test evaluator does not know condition operator {operator}")


def statement_allows(statement: Mapping[str, Any], check: Check) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    if not any(matches(a, check.action, case=False) for a in as_list(statement["Action"])):
        return False
    if not any(matches(r, check.resource) for r in as_list(statement["Resource"])):
        return False
    for operator, block in (statement.get("Condition") or {}).items():
        for key, wanted in block.items():
            values = [str(w) for w in as_list(wanted)]
            if not _condition_holds(operator, key, values, check.context):
                return False
    return True


def allows(policy: Mapping[str, Any], check: Check) -> bool:
    return any(statement_allows(s, check) for s in policy["Statement"])


# ----------------------------------------------------------------------------- static checks


def static_problems(policy: Mapping[str, Any], *, regions: Iterable[str]) -> list[str]:
    """What our own rules say about ``policy`` (parliament misses every one of these)."""
    allowed_regions = set(regions)
    problems: list[str] = []
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "?")
        actions = [str(a) for a in as_list(statement["Action"])]
        resources = [str(r) for r in as_list(statement["Resource"])]
        if statement.get("Effect") != "Allow":
            problems.append(f"{sid}: not an Allow")
        for action in actions:
            if "*" in action or "?" in action:
                problems.append(f"{sid}: wildcard action {action}")
        star_only = [a for a in actions if a in STAR_ONLY_ACTIONS]
        if "*" in resources:
            if resources != ["*"] or len(star_only) != len(actions):
                problems.append(f"{sid}: '*' resource for {actions} or mixed with {resources}")
        elif star_only:
            problems.append(f"{sid}: {star_only} only accept '*'")
        for resource in resources:
            if resource == "*":
                continue
            parts = resource.split(":", 5)
            if len(parts) < 6 or parts[0] != "arn":
                problems.append(f"{sid}: {resource} is not an ARN")
                continue
            if parts[3] not in allowed_regions:
                problems.append(f"{sid}: region {parts[3]} in {resource}")
            if parts[2] == "kms" and not parts[5].startswith("key/"):
                problems.append(f"{sid}: KMS resource {resource} is not a key ARN (alias?)")
            if "*" in parts[3] or "*" in parts[4]:
                problems.append(f"{sid}: wildcard region or account in {resource}")
        conditions = statement.get("Condition") or {}
        if any(a.lower().startswith("kms:") for a in actions):
            if not conditions:
                problems.append(f"{sid}: kms action without a condition")
        for block in conditions.values():
            for key, values in block.items():
                if key == "kms:ViaService":
                    for value in as_list(values):
                        region = str(value).split(".")[1] if "." in str(value) else ""
                        if region not in allowed_regions:
                            problems.append(f"{sid}: kms:ViaService {value} in another region")
    return problems


def parliament_findings(policy_text: str) -> list[str]:
    """parliament's findings of medium severity or more."""
    from parliament import analyze_policy_string

    result = analyze_policy_string(policy_text)
    return [
        f"{f.issue} ({f.severity}): {f.detail}"
        for f in result.findings
        if str(f.severity).upper() not in {"LOW", "INFO"}
    ]


# ----------------------------------------------------------------------------- recorded calls


def aws_calls(stderr: str) -> list[dict[str, Any]]:
    """The ``aws call`` debug lines of one agent run."""
    calls = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "aws call":
            calls.append(event)
    return calls


def parameter_arn(region: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name.removeprefix('/')}"


def checks_for(call: Mapping[str, Any], secrets: Callable[[str], list[str]]) -> list[Check]:
    """The authorizations AWS makes for one logged call.

    ``secrets(filter_or_id)`` returns the ARNs a Secrets Manager name filter (``name*``) or a
    secret id (name or ARN) stands for, looked up in the test double after the run.
    """
    service, operation, region = call["service"], call["operation"], call["region"]
    params: Mapping[str, Any] = call.get("params") or {}
    action = f"{service}:{operation}"
    if (service, operation) == ("ssm", "GetParametersByPath"):
        path = str(params["Path"])
        return [Check(action, parameter_arn(region, path.rstrip("/") or "/"))]
    if (service, operation) == ("ssm", "GetParameters"):
        names = [str(n).split(":", 1)[0] if not str(n).startswith("arn:") else str(n)
                 for n in params["Names"]]
        return [Check(action, parameter_arn(region, n)) for n in names]
    if (service, operation) == ("ssm", "DescribeParameters"):
        return [Check(action, "*")]
    if service == "secretsmanager" and operation in {"GetSecretValue", "DescribeSecret"}:
        return [Check(action, arn) for arn in secrets(str(params["SecretId"]))]
    if (service, operation) == ("secretsmanager", "ListSecrets"):
        return [Check(action, "*")]
    if (service, operation) == ("secretsmanager", "BatchGetSecretValue"):
        out = [Check(action, "*")]
        targets: list[str] = []
        for flt in params.get("Filters") or []:
            out.append(Check("secretsmanager:ListSecrets", "*", why="BatchGetSecretValue filters"))
            if flt["Key"] == "name":
                for value in flt["Values"]:
                    targets.extend(secrets(str(value) + "*"))
        for secret_id in params.get("SecretIdList") or []:
            targets.extend(secrets(str(secret_id)))
        out.extend(
            Check("secretsmanager:GetSecretValue", arn, why="each secret of a batch")
            for arn in targets
        )
        return out
    if (service, operation) == ("kms", "Decrypt"):
        context = dict(params.get("EncryptionContext") or {})
        request: dict[str, object] = {"kms:EncryptionContextKeys": sorted(context)}
        request.update({f"kms:EncryptionContext:{k}": v for k, v in context.items()})
        return [Check(action, str(params["KeyId"]), request)]
    if service == "ecs" and operation in {"DescribeServices", "UpdateService"}:
        cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
        names = as_list(params["services"]) if "services" in params else [params["service"]]
        arn = f"arn:aws:ecs:{region}:{ACCOUNT}:service/{cluster}/"
        return [Check(action, arn + str(n).rsplit("/", 1)[-1]) for n in names]
    if (service, operation) == ("ecs", "DescribeTasks"):
        return [Check(action, str(arn)) for arn in as_list(params["tasks"])]
    raise AssertionError(f"no IAM mapping for {action}: add one, then cover it in iam/")
