"""Secrets Manager rotation as a rotation Lambda does it, on a boto3 client (moto or mock_aws)."""

from __future__ import annotations

from typing import Any


def rotate_by_stage_move(sm: Any, secret_id: str, value: str) -> str:
    """Put ``value`` as AWSPENDING, then move AWSCURRENT onto it; the new version's id."""
    stages = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
    pending = sm.put_secret_value(
        SecretId=secret_id, SecretString=value, VersionStages=["AWSPENDING"]
    )["VersionId"]
    sm.update_secret_version_stage(
        SecretId=secret_id,
        VersionStage="AWSCURRENT",
        MoveToVersionId=pending,
        RemoveFromVersionId=current,
    )
    return str(pending)
