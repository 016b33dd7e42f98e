"""Parsing of reference values (secrets_agent.core.references): every contract form, malformed
ones, and
ordinary values that must stay literal."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secrets_agent.core.errors import DataError
from secrets_agent.core.references import (
    AesdkRef,
    SecretRef,
    SsmRef,
    find_references,
    parse_reference,
)
from secrets_agent.process.fastpath import looks_like_reference

ACCOUNT = "123456789012"
SM_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:kptboard/prod/db-AbC1eF"


@pytest.mark.parametrize(
    ("value", "ref"),
    [
        ("ssm:/kptboard/prod/db", SsmRef(name="/kptboard/prod/db")),
        ("ssm:flat-name.key", SsmRef(name="flat-name.key")),
        ("ssm:/kptboard/prod/db:3", SsmRef(name="/kptboard/prod/db", selector="3")),
        ("ssm:/kptboard/prod/db:live", SsmRef(name="/kptboard/prod/db", selector="live")),
        ("ssm:flat_name:12", SsmRef(name="flat_name", selector="12")),
        (
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/kptboard/prod/db",
            SsmRef(name="/kptboard/prod/db", region="us-east-1", partition="aws", account=ACCOUNT),
        ),
        (
            f"arn:aws:ssm:eu-central-1:{ACCOUNT}:parameter/flatname",
            SsmRef(name="flatname", region="eu-central-1", partition="aws", account=ACCOUNT),
        ),
        (
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/db:7",
            SsmRef(
                name="/app/db", selector="7", region="us-east-1", partition="aws", account=ACCOUNT
            ),
        ),
        (
            f"arn:aws-cn:ssm:cn-north-1:{ACCOUNT}:parameter/app/db",
            SsmRef(name="/app/db", region="cn-north-1", partition="aws-cn", account=ACCOUNT),
        ),
        (
            f"arn:aws-us-gov:ssm:us-gov-west-1:{ACCOUNT}:parameter/app/db",
            SsmRef(name="/app/db", region="us-gov-west-1", partition="aws-us-gov", account=ACCOUNT),
        ),
        ("secretsmanager:kptboard/prod/db", SecretRef(secret_id="kptboard/prod/db")),
        (
            "secretsmanager:kptboard/prod/db:password",
            SecretRef(secret_id="kptboard/prod/db", json_key="password"),
        ),
        (
            "secretsmanager:kptboard/prod/db:password:AWSPREVIOUS",
            SecretRef(secret_id="kptboard/prod/db", json_key="password", stage="AWSPREVIOUS"),
        ),
        (
            "secretsmanager:db:password:AWSCURRENT:0123abcd-4567",
            SecretRef(
                secret_id="db", json_key="password", stage="AWSCURRENT", version_id="0123abcd-4567"
            ),
        ),
        ("secretsmanager:db::AWSPREVIOUS", SecretRef(secret_id="db", stage="AWSPREVIOUS")),
        ("secretsmanager:db:::v-1", SecretRef(secret_id="db", version_id="v-1")),
        ("secretsmanager:db:::", SecretRef(secret_id="db")),
        ("secretsmanager:db:", SecretRef(secret_id="db")),
        ("secretsmanager:a+b=c.d@e_f-g/h", SecretRef(secret_id="a+b=c.d@e_f-g/h")),
        (
            SM_ARN,
            SecretRef(secret_id=SM_ARN, region="eu-west-1", partition="aws", account=ACCOUNT),
        ),
        (
            SM_ARN + ":password::",  # ECS valueFrom with a JSON key
            SecretRef(
                secret_id=SM_ARN,
                json_key="password",
                region="eu-west-1",
                partition="aws",
                account=ACCOUNT,
            ),
        ),
        (
            SM_ARN + "::AWSPREVIOUS:",
            SecretRef(
                secret_id=SM_ARN,
                stage="AWSPREVIOUS",
                region="eu-west-1",
                partition="aws",
                account=ACCOUNT,
            ),
        ),
        (
            SM_ARN + ":password:AWSCURRENT:ver-1",
            SecretRef(
                secret_id=SM_ARN,
                json_key="password",
                stage="AWSCURRENT",
                version_id="ver-1",
                region="eu-west-1",
                partition="aws",
                account=ACCOUNT,
            ),
        ),
        (
            f"arn:aws-us-gov:secretsmanager:us-gov-east-1:{ACCOUNT}:secret:db-XyZ123",
            SecretRef(
                secret_id=f"arn:aws-us-gov:secretsmanager:us-gov-east-1:{ACCOUNT}:secret:db-XyZ123",
                region="us-gov-east-1",
                partition="aws-us-gov",
                account=ACCOUNT,
            ),
        ),
        ("aesdk:AYADeJ+/abc=", AesdkRef(ciphertext="AYADeJ+/abc=")),
    ],
)
def test_reference_forms(value: str, ref: object) -> None:
    assert looks_like_reference(value)
    assert parse_reference(value) == ref


def test_ssm_query_carries_the_selector() -> None:
    assert SsmRef(name="/a", selector="3").query == "/a:3"
    assert SsmRef(name="/a").query == "/a"


@pytest.mark.parametrize(
    "value",
    [
        "ssm:",
        "ssm::3",
        "ssm:/a:",
        "ssm:/a:3:4",
        "ssm:/a b",
        "ssm://double",
        "ssm:/a$b",
        "ssm:" + "a" * 2049,
        "ssm:/a:" + "l" * 101,
        "secretsmanager:",
        "secretsmanager::key",
        "secretsmanager:a b",
        "secretsmanager:db:k:s:v:extra",
        "secretsmanager:" + "n" * 513,
        "aesdk:",
        "aesdk:not base64!",
        "aesdk:abc*def",
        f"arn:aws:ssm::{ACCOUNT}:parameter/x",
        "arn:aws:ssm:us-east-1:parameter/x",
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter",
        "arn:aws:ssm:us-east-1:123:parameter/x",
        "arn:aws:ssm:us-east-1:123456789012:parameter/",
        "arn:aws:ssm:US-EAST-1:123456789012:parameter/x",
        "arn:gcp:ssm:us-east-1:123456789012:parameter/x",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:rotation/x",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf:k:s:v:extra",
    ],
)
def test_malformed_references_are_data_errors(value: str) -> None:
    assert looks_like_reference(value)
    with pytest.raises(DataError) as info:
        parse_reference(value)
    assert info.value.exit_code == 65


@pytest.mark.parametrize(
    "value",
    [
        "",
        "hello",
        "hello:world",
        "postgres://user:pass@db:5432/app",
        "redis://cache:6379/0",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123456789012:role/x",
        "arn:aws:kms:us-east-1:123456789012:key/abc",
        # Only a parameter is an SSM reference; other SSM resources are ordinary values.
        "arn:aws:ssm:us-east-1:123456789012:document/x",
        "arn:aws:ssm:us-east-1:123456789012:automation-definition/x",
        "arn:aws:ssm:us-east-1:123456789012:automation-definition/x:$DEFAULT",
        "arn:aws:ssm:us-east-1::document/AWS-RunShellScript",
        "arn:aws:ssm:us-east-1:123456789012:parameters/x",
        " ssm:/a",
        "SSM:/a",
        "x ssm:/a",
        "ssm",
        "secretsmanager",
        "aesdk",
        "https://ssm:443/",
    ],
)
def test_ordinary_values_are_not_references(value: str) -> None:
    assert not looks_like_reference(value)
    assert parse_reference(value) is None


def test_find_references_maps_variables_and_ignores_ordinary_values() -> None:
    found = find_references(
        {
            "PATH": "/usr/bin",
            "DATABASE_URL": "postgres://u:p@h/db",
            "SECRET_KEY_BASE": "ssm:/app/skb",
            "DB_PASSWORD": "secretsmanager:app/db:password",
            "TOKEN": "aesdk:QUJD",
        }
    )
    assert found == {
        "SECRET_KEY_BASE": SsmRef(name="/app/skb"),
        "DB_PASSWORD": SecretRef(secret_id="app/db", json_key="password"),
        "TOKEN": AesdkRef(ciphertext="QUJD"),
    }


def test_find_references_names_the_variable_of_a_malformed_reference() -> None:
    with pytest.raises(DataError) as info:
        find_references({"OK": "ssm:/a", "BROKEN_REF": "secretsmanager:a:b:c:d:e"})
    assert "BROKEN_REF" in info.value.message


@given(st.text())
@example("ssm:")
@example("arn:aws:ssm:")
@example("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
@example("arn::ssm:us-east-1:123456789012:parameter/x")
@example("secretsmanager:\x00")
@example("aesdk:\n")
def test_any_string_is_a_reference_none_or_data_error(value: str) -> None:
    try:
        ref = parse_reference(value)
    except DataError:
        assert looks_like_reference(value)
        return
    if ref is None:
        assert not looks_like_reference(value)
    else:
        assert isinstance(ref, SsmRef | SecretRef | AesdkRef)


PREFIXES = st.sampled_from(
    [
        "ssm:",
        "secretsmanager:",
        "aesdk:",
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:",
        "arn:aws-cn:ssm:",
    ]
)


@given(PREFIXES, st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_reference_like_strings_never_raise_anything_but_data_error(prefix: str, rest: str) -> None:
    try:
        ref = parse_reference(prefix + rest)
    except DataError:
        return
    # None only for an SSM ARN that names no parameter (a document, an automation definition).
    assert ref is not None or (prefix == "arn:aws-cn:ssm:" and ":parameter" not in rest)


@pytest.mark.parametrize(
    "value",
    ["ssm:s3cr3tpart:not a label!", "secretsmanager:s3cr3tpart:a:b:c:d", "ssm:s3cr3tpart x"],
)
def test_a_malformed_reference_error_quotes_no_part_of_the_value(value: str) -> None:
    """A secret that merely starts like a reference must not leak through the error line."""
    with pytest.raises(DataError) as info:
        find_references({"API_TOKEN": value})
    assert "API_TOKEN" in info.value.line()
    assert "s3cr3tpart" not in info.value.line()
