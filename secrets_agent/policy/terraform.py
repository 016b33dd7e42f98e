"""Terraform rendering of a policy document: a ``locals`` block holding ``jsonencode({...})``.

Chosen over an ``aws_iam_policy_document`` data source because it pastes anywhere, needs no
provider to evaluate (``terraform console`` checks it offline) and reads like the JSON policy.
Without ``--account-id`` the account comes from an ``aws_caller_identity`` data source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from secrets_agent.policy.statements import ACCOUNT_PLACEHOLDER, TF_ACCOUNT


def hcl_string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")
    return text.replace(ACCOUNT_PLACEHOLDER, TF_ACCOUNT)


def _hcl_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key) else hcl_string(key)


def _hcl_value(value: object, indent: str) -> list[str]:
    """Lines of an HCL expression; the first line has no indent, the rest have ``indent``."""
    inner = indent + "  "
    if isinstance(value, str):
        return [hcl_string(value)]
    if isinstance(value, list):
        if len(value) <= 1:
            return ["[" + ", ".join(hcl_string(str(v)) for v in value) + "]"]
        return ["[", *(f"{inner}{hcl_string(str(v))}," for v in value), f"{indent}]"]
    if not isinstance(value, dict):
        raise TypeError(f"no HCL form for {type(value).__name__}")
    return ["{", *_hcl_attributes(value, inner), f"{indent}}}"]


def _hcl_attributes(obj: Mapping[str, object], indent: str) -> list[str]:
    """``key = value`` lines, ``=`` aligned across runs of one-line values as terraform fmt does."""
    rendered = [(_hcl_key(k), _hcl_value(v, indent)) for k, v in obj.items()]
    lines: list[str] = []
    group: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in group), default=0)
        lines.extend(f"{indent}{k.ljust(width)} = {v}" for k, v in group)
        group.clear()

    for key, value_lines in rendered:
        if len(value_lines) == 1:
            group.append((key, value_lines[0]))
            continue
        flush()
        lines.append(f"{indent}{key} = {value_lines[0]}")
        lines.extend(value_lines[1:])
    flush()
    return lines


def render_terraform(
    doc: Mapping[str, object], *, summary: str, notes: Sequence[str] = ()
) -> str:
    """A ``locals`` block holding ``jsonencode({...})``: paste it, then attach the local."""
    lines = [
        f"# Least privilege for secrets-agent: {summary}.",
        "# Attach it to the ECS task role (not the execution role), for example:",
        '#   resource "aws_iam_role_policy" "secrets_agent" {',
        "#     role   = aws_iam_role.app_task.id",
        "#     policy = local.secrets_agent_policy",
        "#   }",
        *(f"# {note}" for note in notes),
    ]
    if ACCOUNT_PLACEHOLDER in json.dumps(doc):
        lines += ["", 'data "aws_caller_identity" "secrets_agent" {}']
    lines += ["", "locals {", "  secrets_agent_policy = jsonencode({"]
    lines += [f"    Version = {hcl_string('2012-10-17')}", "    Statement = ["]
    statements = doc["Statement"]
    if not isinstance(statements, list):
        raise TypeError("a policy document holds a list of statements")
    for statement in statements:
        lines += ["      {", *_hcl_attributes(statement, "        "), "      },"]
    lines += ["    ]", "  })", "}"]
    return "\n".join(lines) + "\n"
