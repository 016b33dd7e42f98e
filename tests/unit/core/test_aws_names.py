"""AWS naming rules that the loads and the IAM policies share (core/aws_names.py)."""

from __future__ import annotations

import pytest

from secrets_agent.aws.secrets_manager import secret_name_of
from secrets_agent.core import aws_names
from secrets_agent.policy.statements import Where, secret_pattern


def test_the_secret_arn_suffix_is_read_and_granted_by_one_rule() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-a1B2c3"
    assert aws_names.SECRET_ARN_SUFFIX.search(arn)
    assert secret_name_of(arn) == "app/db"
    where = Where("aws", "eu-west-1", "123456789012")
    assert secret_pattern(where, arn) == arn
    assert secret_pattern(where, arn[:-7]) == arn[:-7] + aws_names.SECRET_ARN_SUFFIX_WILDCARD
    assert secret_pattern(where, "app/db").endswith(":secret:app/db-??????")


def test_the_region_of_a_kms_arn() -> None:
    assert aws_names.kms_region("arn:aws-cn:kms:cn-north-1:123456789012:key/abc") == "cn-north-1"
    assert aws_names.kms_region("arn:aws:kms:eu-west-1:123456789012:alias/app") == "eu-west-1"
    assert aws_names.kms_region("alias/app") is None
    assert aws_names.kms_region("1234abcd-12ab-34cd-56ef-1234567890ab") is None


def test_a_key_not_an_alias_for_the_settings_and_the_policy() -> None:
    from secrets_agent.core.errors import ConfigError
    from secrets_agent.core.settings import load_settings
    from secrets_agent.policy.needs import service_key_arn

    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"
    alias = "arn:aws:kms:eu-west-1:123456789012:alias/app"
    assert aws_names.KMS_KEY_ONLY_ARN.match(key) and not aws_names.KMS_KEY_ONLY_ARN.match(alias)
    assert service_key_arn(key, {"eu-west-1"}) == key
    assert load_settings({"SECRETS_AGENT_KMS_KEY_ARNS": key}).kms_key_arns == (key,)
    with pytest.raises(ConfigError, match="alias in Resource"):
        service_key_arn(alias, {"eu-west-1"})
    with pytest.raises(ConfigError, match="SECRETS_AGENT_KMS_KEY_ARNS"):
        load_settings({"SECRETS_AGENT_KMS_KEY_ARNS": alias})


def test_the_region_is_read_as_the_sdks_read_it() -> None:
    assert aws_names.region_of({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}) == (
        "eu-west-1"
    )
    assert aws_names.region_of({"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-east-1"}) == "us-east-1"
    assert aws_names.region_of({"AWS_DEFAULT_REGION": ""}) is None


def test_one_ecs_name_grammar_for_the_settings_and_the_metrics_family() -> None:
    from secrets_agent.core.errors import ConfigError
    from secrets_agent.core.settings import load_settings

    assert aws_names.ECS_NAME.match("web_app-1")
    assert not aws_names.ECS_NAME.match("arn:aws:ecs:eu-west-1:123456789012:service/web")
    assert not aws_names.ECS_NAME.match("x" * 256)
    with pytest.raises(ConfigError, match="SECRETS_AGENT_ECS_SERVICE"):
        load_settings({"SECRETS_AGENT_ECS_SERVICE": "web app"})


def test_one_arn_grammar_for_references_task_arns_and_keys() -> None:
    from secrets_agent.core.references import SsmRef, parse_reference

    task = aws_names.parse_arn("arn:aws-us-gov:ecs:us-gov-west-1:123456789012:task/c/0a1b", "ecs")
    assert task == ("aws-us-gov", "ecs", "us-gov-west-1", "123456789012", "task/c/0a1b")
    assert aws_names.parse_arn("arn:aws:ssm:eu-west-1:123456789012:parameter/x", "ecs") is None
    assert aws_names.parse_arn("arn:aws:ecs:eu-west-1:1234:task/x") is None  # not an account
    assert aws_names.parse_arn("arn:aws:ecs:west:123456789012:task/x") is None  # not a region
    ref = parse_reference("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/app/db")
    assert isinstance(ref, SsmRef) and ref.name == "/app/db"
    assert (ref.partition, ref.region, ref.account) == ("aws-cn", "cn-north-1", "123456789012")
    assert aws_names.kms_region("arn:aws:kms:west:123456789012:key/abc") is None
