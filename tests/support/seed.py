"""Test data put on the moto server through a boto3 client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def put(ssm: Any, name: str, value: str, type_: str = "SecureString") -> int:
    """Put (or overwrite) one parameter; its new version."""
    answer = ssm.put_parameter(Name=name, Value=value, Type=type_, Overwrite=True)
    return int(answer["Version"])


def put_all(ssm: Any, parameters: Mapping[str, str], type_: str = "SecureString") -> None:
    """Put (or overwrite) each parameter, in order."""
    for name, value in parameters.items():
        put(ssm, name, value, type_)


def json_secret(sm: Any, name: str, value: Mapping[str, object]) -> str:
    """Create a Secrets Manager secret whose value is ``value`` as JSON; its ARN."""
    return str(sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])
