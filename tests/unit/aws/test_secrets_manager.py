"""secrets_agent.aws.secrets_manager: moto in-process for behaviour, Stubber for pages and
errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from secrets_agent.aws import secrets_manager as sm
from secrets_agent.aws.secrets_manager_values import expand
from secrets_agent.core.errors import (
    AccessDeniedError,
    AgentError,
    ConfigError,
    DataError,
    NotFoundError,
    ServiceError,
)
from secrets_agent.core.model import Item
from secrets_agent.core.references import SecretRef, parse_reference
from secrets_agent.output.logs import Logger
from tests.support.rotation import rotate_by_stage_move

REGION = "us-east-1"
CANARY = "canary-Zq9-value"


def _client(region: str = REGION) -> Any:
    return boto3.client(
        "secretsmanager",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Calls:
    """Counts API calls per operation on a client."""

    def __init__(self, client: Any) -> None:
        self.by_op: dict[str, int] = {}
        client.meta.events.register("before-call.secrets-manager", self._on)

    def _on(self, model: Any, **_: Any) -> None:
        self.by_op[model.name] = self.by_op.get(model.name, 0) + 1


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        yield _client()


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def log(log_stream: io.StringIO) -> Logger:
    return Logger(level="debug", fmt="json", stream=log_stream)


def _by_key(items: list[Item]) -> dict[str | None, Item]:
    return {i.key: i for i in items}


def _values(items: list[Item]) -> dict[str | None, str]:
    return {i.key: i.value.reveal() for i in items}


# ---------------------------------------------------------------- prefix load (moto)


def test_prefix_loads_json_plain_and_binary_within_the_boundary(aws: Any, log: Logger) -> None:
    db = aws.create_secret(
        Name="kptboard/prod/database",
        SecretString='{"username": "app", "password": "p=w\\n\'$", "port": 5432, '
        '"ssl": true, "ratio": 1.50, "off": false}',
    )
    aws.create_secret(Name="kptboard/prod/secret_key_base", SecretString=" abc\n")
    aws.create_secret(Name="kptboard/prod/pem", SecretBinary="é-ü".encode())
    for outside in (
        "kptboard/production/x",
        "kptboard/prodx",
        "KPTBOARD/prod/y",
        "a/kptboard/prod/z",
    ):
        aws.create_secret(Name=outside, SecretString="no")
    items = sm.load_prefix(aws, "kptboard/prod", log=log)
    assert _values(items) == {
        "database/username": "app",
        "database/password": "p=w\n'$",
        "database/port": "5432",
        "database/ssl": "true",
        "database/ratio": "1.50",
        "database/off": "false",
        "secret_key_base": " abc\n",
        "pem": "é-ü",
    }
    by_key = _by_key(items)
    assert by_key["database/username"].source_name == "kptboard/prod/database:username"
    assert by_key["database/username"].version == db["VersionId"]
    assert by_key["secret_key_base"].source_name == "kptboard/prod/secret_key_base"
    assert {i.source for i in items} == {"secretsmanager"}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("kptboard/prod/", {"a"}),
        ("kptboard/prod", {"a"}),
        ("kptboard/", {"prod/a", "prod-b", "production/c"}),
        ("kptboard/prod-", {"b"}),
        ("kptboard/prod_", {"d"}),
        ("kptboard/prod.", {"e"}),
    ],
)
def test_prefix_boundary_rule(aws: Any, log: Logger, prefix: str, expected: set[str]) -> None:
    for name in ("kptboard/prod/a", "kptboard/prod-b", "kptboard/production/c"):
        aws.create_secret(Name=name, SecretString="v")
    if prefix.endswith(("_", ".")):
        aws.create_secret(Name=prefix + ("d" if prefix.endswith("_") else "e"), SecretString="v")
    assert {i.key for i in sm.load_prefix(aws, prefix, log=log)} == expected


def test_nothing_under_the_prefix_is_66_naming_it(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/production/x", SecretString="v")
    with pytest.raises(NotFoundError) as info:
        sm.load_prefix(aws, "kptboard/prod", log=log)
    assert "'kptboard/prod'" in info.value.message
    assert "SECRETS_MANAGER_PREFIX" in info.value.hint


def test_a_name_left_empty_after_the_prefix_is_65(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/", SecretString=CANARY)
    aws.create_secret(Name="kptboard/prod/ok", SecretString="v")
    with pytest.raises(DataError) as info:
        sm.load_prefix(aws, "kptboard/prod", log=log)
    assert "'kptboard/prod/'" in info.value.message
    assert CANARY not in info.value.line()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"a": {"b": CANARY}}, "nested object"),
        ({"a": [CANARY]}, "array"),
        ({"a": None, "z": CANARY}, "null"),
    ],
)
def test_nested_array_or_null_in_an_expanded_secret_is_65(
    aws: Any, log: Logger, body: object, kind: str
) -> None:
    aws.create_secret(Name="kptboard/prod/db", SecretString=json.dumps(body))
    with pytest.raises(DataError) as info:
        sm.load_prefix(aws, "kptboard/prod", log=log)
    assert kind in info.value.message
    assert "'kptboard/prod/db' key 'a'" in info.value.message
    assert CANARY not in info.value.line()


@pytest.mark.parametrize(
    "stored",
    ['"x"', "123", "true", "null", "[1, 2]", "{not json", "{}x", '{"a": NaN}', "plain", " "],
)
def test_values_that_are_not_a_json_object_are_one_variable_as_stored(
    aws: Any, log: Logger, stored: str
) -> None:
    aws.create_secret(Name="kptboard/prod/thing", SecretString=stored)
    assert _values(sm.load_prefix(aws, "kptboard/prod", log=log)) == {"thing": stored}


@pytest.mark.parametrize(
    ("stored", "needle"),
    [
        ('{"a": "1", "a": "2"}', "twice"),
        ('{"--": "1"}', "no letter or digit"),
        ('{"": "1"}', "no letter"),
    ],
)
def test_ambiguous_json_keys_are_65(aws: Any, log: Logger, stored: str, needle: str) -> None:
    aws.create_secret(Name="kptboard/prod/db", SecretString=stored)
    with pytest.raises(DataError, match=needle):
        sm.load_prefix(aws, "kptboard/prod", log=log)


def test_binary_secret_that_is_not_utf8_is_65_without_its_bytes(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/blob", SecretBinary=b"\xff\xfe\x9c")
    with pytest.raises(DataError) as info:
        sm.load_prefix(aws, "kptboard/prod", log=log)
    assert "binary" in info.value.message and "'kptboard/prod/blob'" in info.value.message
    assert info.value.__cause__ is None and "xff" not in info.value.line()


def test_rotation_by_stage_move_reads_awscurrent(aws: Any, log: Logger) -> None:
    """moto's batch read returns the old version after a stage move; the source corrects it."""
    aws.create_secret(Name="kptboard/prod/token", SecretString="old")
    aws.create_secret(Name="kptboard/prod/other", SecretString="x")
    new = rotate_by_stage_move(aws, "kptboard/prod/token", "new")
    calls = Calls(aws)
    items = _by_key(sm.load_prefix(aws, "kptboard/prod", log=log))
    assert items["token"].value.reveal() == "new"
    assert items["token"].version == new
    # One batch page, plus one re-read for the one stale entry only.
    assert calls.by_op == {"BatchGetSecretValue": 1, "GetSecretValue": 1}


def test_put_secret_value_is_seen_by_the_next_load(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/token", SecretString="old")
    new = aws.put_secret_value(SecretId="kptboard/prod/token", SecretString="new")["VersionId"]
    items = sm.load_prefix(aws, "kptboard/prod", log=log)
    assert [(i.value.reveal(), i.version) for i in items] == [("new", new)]


def test_deleted_secret_under_the_prefix_is_left_out(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/gone", SecretString="v")
    aws.delete_secret(SecretId="kptboard/prod/gone")
    aws.create_secret(Name="kptboard/prod/kept", SecretString="v")
    assert [i.key for i in sm.load_prefix(aws, "kptboard/prod", log=log)] == ["kept"]


def test_secret_without_a_value_under_the_prefix_is_66_naming_it(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/empty")
    aws.create_secret(Name="kptboard/prod/kept", SecretString="v")
    with pytest.raises(NotFoundError, match="'kptboard/prod/empty'"):
        sm.load_prefix(aws, "kptboard/prod", log=log)


def test_many_secrets_page_by_twenty(aws: Any, log: Logger) -> None:
    for n in range(45):
        aws.create_secret(Name=f"kptboard/prod/s{n:02d}", SecretString=str(n))
    calls = Calls(aws)
    items = sm.load_prefix(aws, "kptboard/prod", log=log)
    assert _values(items) == {f"s{n:02d}": str(n) for n in range(45)}
    assert calls.by_op == {"BatchGetSecretValue": 3}


def test_invalid_prefix_is_a_configuration_error() -> None:
    """The settings refuse it, before any source sees it (the sources do not check again)."""
    from secrets_agent.core.settings import load_settings

    with pytest.raises(ConfigError, match="SECRETS_MANAGER_PREFIX"):
        load_settings({"SECRETS_MANAGER_PREFIX": "kpt board:prod"})


def test_logs_name_secrets_and_versions_never_values(
    aws: Any, log: Logger, log_stream: io.StringIO
) -> None:
    aws.create_secret(Name="kptboard/prod/db", SecretString=json.dumps({"password": CANARY}))
    aws.create_secret(Name="kptboard/prod/plain", SecretString=CANARY)
    sm.load_prefix(aws, "kptboard/prod", log=log)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    loaded = [entry for entry in lines if entry["event"] == "secrets manager prefix loaded"]
    assert len(loaded) == 1
    assert loaded[0]["secrets"] == ["kptboard/prod/db", "kptboard/prod/plain"]
    assert loaded[0]["count"] == 2 and loaded[0]["calls"] == 1
    assert CANARY not in log_stream.getvalue()


# ---------------------------------------------------------------- prefix load (Stubber)


def _entry(name: str, value: str, *, stages: tuple[str, ...] = ("AWSCURRENT",)) -> dict[str, Any]:
    return {
        "ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}-AbCdEf",
        "Name": name,
        "VersionId": f"{abs(hash(name)):032d}"[:32],
        "SecretString": value,
        "VersionStages": list(stages),
    }


def _batch_params(prefix_filter: str, token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Filters": [{"Key": "name", "Values": [prefix_filter]}],
        "MaxResults": 20,
    }
    if token:
        params["NextToken"] = token
    return params


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = _client()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_empty_pages_with_a_token_keep_the_loop_going(
    stubbed: tuple[Any, Stubber], log: Logger
) -> None:
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value", {"SecretValues": [], "NextToken": "t1"}, _batch_params("app/")
    )
    stub.add_response(
        "batch_get_secret_value",
        {"SecretValues": [_entry("app/a", "1")], "NextToken": "t2"},
        _batch_params("app/", "t1"),
    )
    stub.add_response(
        "batch_get_secret_value",
        {"SecretValues": [], "NextToken": "t3"},
        _batch_params("app/", "t2"),
    )
    stub.add_response(
        "batch_get_secret_value",
        {"SecretValues": [_entry("app/b", "2")]},
        _batch_params("app/", "t3"),
    )
    assert _values(sm.load_prefix(client, "app", log=log)) == {"a": "1", "b": "2"}


def test_server_side_overmatch_is_filtered_here(stubbed: tuple[Any, Stubber], log: Logger) -> None:
    """Whatever the filter returns, only names under the boundary load; errors outside it are
    another prefix's business (a correctly scoped policy denies them)."""
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [_entry("app/a", "1"), _entry("appx/b", "2"), _entry("App/c", "3")],
            "Errors": [
                {
                    "SecretId": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:app-x-AbCdEf",
                    "ErrorCode": "AccessDeniedException",
                    "Message": "denied",
                }
            ],
        },
        _batch_params("app/"),
    )
    assert _values(sm.load_prefix(client, "app", log=log)) == {"a": "1"}


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("AccessDeniedException", "User is not authorized", AccessDeniedError),
        ("DecryptionFailure", "Access to KMS is not allowed", AccessDeniedError),
        ("DecryptionFailure", "The key is disabled", ServiceError),
        ("ResourceNotFoundException", "no current version", NotFoundError),
        ("InternalServiceError", "boom", ServiceError),
    ],
)
def test_per_secret_batch_errors_fail_closed_naming_the_secret(
    stubbed: tuple[Any, Stubber], log: Logger, code: str, message: str, expected: type[AgentError]
) -> None:
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [_entry("app/a", "1")],
            "Errors": [{"SecretId": "app/b", "ErrorCode": code, "Message": message}],
        },
        _batch_params("app/"),
    )
    with pytest.raises(expected) as info:
        sm.load_prefix(client, "app", log=log)
    assert type(info.value) is expected
    assert "'app/b'" in info.value.message


def test_batch_error_given_by_arn_names_the_secret(
    stubbed: tuple[Any, Stubber], log: Logger
) -> None:
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [],
            "Errors": [
                {
                    "SecretId": _entry("app/b", "")["ARN"],
                    "ErrorCode": "AccessDeniedException",
                    "Message": "not authorized",
                }
            ],
        },
        _batch_params("app/"),
    )
    with pytest.raises(AccessDeniedError) as info:
        sm.load_prefix(client, "app", log=log)
    assert "'app/b'" in info.value.message
    assert "secretsmanager:GetSecretValue" in info.value.message


def test_invalid_request_entry_falls_back_to_listing(
    stubbed: tuple[Any, Stubber], log: Logger
) -> None:
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [_entry("app/a", "1")],
            "Errors": [
                {
                    "SecretId": "app/gone",
                    "ErrorCode": "InvalidRequestException",
                    "Message": "deleted",
                }
            ],
        },
        _batch_params("app/"),
    )
    stub.add_response(
        "list_secrets",
        {"SecretList": [{"Name": "app/a", "ARN": _entry("app/a", "")["ARN"]}]},
        {"Filters": [{"Key": "name", "Values": ["app/"]}], "MaxResults": 100},
    )
    stub.add_response(
        "get_secret_value",
        {k: v for k, v in _entry("app/a", "1").items()},
        {"SecretId": _entry("app/a", "")["ARN"], "VersionStage": "AWSCURRENT"},
    )
    assert _values(sm.load_prefix(client, "app", log=log)) == {"a": "1"}


@pytest.mark.parametrize(
    ("code", "status", "expected", "needle"),
    [
        ("403", 403, AccessDeniedError, "secretsmanager:BatchGetSecretValue"),
        ("AccessDeniedException", 400, AccessDeniedError, "secretsmanager:BatchGetSecretValue"),
        ("ThrottlingException", 400, ServiceError, "ThrottlingException"),
        ("InternalServiceError", 500, ServiceError, "InternalServiceError"),
    ],
)
def test_whole_batch_failures_map_by_code(
    stubbed: tuple[Any, Stubber],
    log: Logger,
    code: str,
    status: int,
    expected: type[AgentError],
    needle: str,
) -> None:
    client, stub = stubbed
    stub.add_client_error(
        "batch_get_secret_value",
        service_error_code=code,
        http_status_code=status,
        expected_params=_batch_params("app/"),
    )
    with pytest.raises(expected) as info:
        sm.load_prefix(client, "app", log=log)
    assert needle in info.value.message and "'app'" in info.value.message
    assert info.value.__cause__ is not None
    if expected is AccessDeniedError:
        assert "ListSecrets" in info.value.hint and "GetSecretValue" in info.value.hint


def test_a_repeated_page_token_stops_with_69(stubbed: tuple[Any, Stubber], log: Logger) -> None:
    client, stub = stubbed
    stub.add_response(
        "batch_get_secret_value", {"SecretValues": [], "NextToken": "t"}, _batch_params("app/")
    )
    stub.add_response(
        "batch_get_secret_value", {"SecretValues": [], "NextToken": "t"}, _batch_params("app/", "t")
    )
    with pytest.raises(ServiceError, match="same page token"):
        sm.load_prefix(client, "app", log=log)


def test_unreachable_endpoint_is_69() -> None:
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(ServiceError) as info:
        sm.load_prefix(client, "app", log=Logger(stream=io.StringIO()))
    assert info.value.__cause__ is not None


# ---------------------------------------------------------------- references


def _refs(**values: str) -> dict[str, SecretRef]:
    out: dict[str, SecretRef] = {}
    for var, value in values.items():
        ref = parse_reference(value)
        assert isinstance(ref, SecretRef)
        out[var] = ref
    return out


@pytest.fixture
def rotated(aws: Any) -> dict[str, str]:
    """kptboard/prod/db with a current and a previous version; returns the version ids."""
    old = aws.create_secret(
        Name="kptboard/prod/db", SecretString=json.dumps({"user": "u1", "pw": "p1", "n": 2})
    )["VersionId"]
    new = aws.put_secret_value(
        SecretId="kptboard/prod/db", SecretString=json.dumps({"user": "u2", "pw": "p2", "n": 3})
    )["VersionId"]
    arn = aws.describe_secret(SecretId="kptboard/prod/db")["ARN"]
    return {"old": old, "new": new, "arn": arn}


def test_every_reference_form(aws: Any, log: Logger, rotated: dict[str, str]) -> None:
    arn = rotated["arn"]
    refs = _refs(
        WHOLE="secretsmanager:kptboard/prod/db",
        USER="secretsmanager:kptboard/prod/db:user",
        PREV_USER="secretsmanager:kptboard/prod/db:user:AWSPREVIOUS:",
        PREV_WHOLE="secretsmanager:kptboard/prod/db::AWSPREVIOUS:",
        BY_VERSION=f"secretsmanager:kptboard/prod/db:pw::{rotated['old']}",
        BOTH=f"secretsmanager:kptboard/prod/db:n:AWSCURRENT:{rotated['new']}",
        ARN_KEY=f"{arn}:pw",
        ARN_WHOLE=arn,
        ARN_PREV=f"{arn}:user:AWSPREVIOUS:",
    )
    regions: list[str | None] = []

    def client_for(region: str | None) -> Any:
        regions.append(region)
        return aws

    items = sm.resolve_refs(client_for, refs, log=log)
    got = {var: item.value.reveal() for var, item in items.items()}
    assert got == {
        "WHOLE": json.dumps({"user": "u2", "pw": "p2", "n": 3}),
        "USER": "u2",
        "PREV_USER": "u1",
        "PREV_WHOLE": json.dumps({"user": "u1", "pw": "p1", "n": 2}),
        "BY_VERSION": "p1",
        "BOTH": "3",
        "ARN_KEY": "p2",
        "ARN_WHOLE": json.dumps({"user": "u2", "pw": "p2", "n": 3}),
        "ARN_PREV": "u1",
    }
    assert items["USER"].source_name == "kptboard/prod/db:user"
    assert items["USER"].version == rotated["new"] and items["PREV_USER"].version == rotated["old"]
    assert all(item.key is None for item in items.values())
    assert set(regions) == {None, REGION}


def test_the_same_secret_named_twice_is_read_once(
    aws: Any, log: Logger, rotated: dict[str, str]
) -> None:
    calls = Calls(aws)
    refs = _refs(
        A="secretsmanager:kptboard/prod/db:user",
        B="secretsmanager:kptboard/prod/db:pw",
        C="secretsmanager:kptboard/prod/db",
        D="secretsmanager:kptboard/prod/db:user:AWSPREVIOUS:",
    )
    items = sm.resolve_refs(lambda _region: aws, refs, log=log)
    assert [items[v].value.reveal() for v in "ABD"] == ["u2", "p2", "u1"]
    assert calls.by_op == {"GetSecretValue": 2}


def test_arn_region_picks_the_client() -> None:
    with mock_aws():
        west = _client("us-west-2")
        arn = west.create_secret(Name="shared/key", SecretString="w")["ARN"]
        _client(REGION).create_secret(Name="shared/key", SecretString="e")
        clients = {None: _client(REGION), "us-west-2": west}
        refs = _refs(WEST=arn, EAST="secretsmanager:shared/key")
        items = sm.resolve_refs(lambda r: clients[r], refs, log=Logger(stream=io.StringIO()))
        assert {v: i.value.reveal() for v, i in items.items()} == {"WEST": "w", "EAST": "e"}


@pytest.mark.parametrize(
    ("value", "error", "needle"),
    [
        ("secretsmanager:kptboard/prod/nope", NotFoundError, "secretsmanager:kptboard/prod/nope"),
        ("secretsmanager:kptboard/prod/db:missing", NotFoundError, "no JSON key 'missing'"),
        ("secretsmanager:kptboard/prod/db:nested", DataError, "nested object"),
        ("secretsmanager:kptboard/prod/db:list", DataError, "array"),
        ("secretsmanager:kptboard/prod/db:nul", DataError, "null"),
        ("secretsmanager:kptboard/prod/plain:k", DataError, "not valid JSON"),
        ("secretsmanager:kptboard/prod/scalar:k", DataError, "not a JSON object"),
        ("secretsmanager:kptboard/prod/blob", DataError, "not UTF-8"),
        ("secretsmanager:kptboard/prod/db::NOSTAGE:", NotFoundError, "NOSTAGE"),
        ("secretsmanager:kptboard/prod/gone", NotFoundError, "marked for deletion"),
    ],
)
def test_reference_failures(
    aws: Any, log: Logger, value: str, error: type[AgentError], needle: str
) -> None:
    aws.create_secret(
        Name="kptboard/prod/db",
        SecretString=json.dumps(
            {"nested": {"a": CANARY}, "list": [CANARY], "nul": None, "k": CANARY}
        ),
    )
    aws.create_secret(Name="kptboard/prod/plain", SecretString=CANARY)
    aws.create_secret(Name="kptboard/prod/scalar", SecretString="123")
    aws.create_secret(Name="kptboard/prod/blob", SecretBinary=b"\xff" + CANARY.encode())
    aws.create_secret(Name="kptboard/prod/gone", SecretString=CANARY)
    aws.delete_secret(SecretId="kptboard/prod/gone")
    with pytest.raises(error) as info:
        sm.resolve_refs(lambda _r: aws, _refs(MY_VAR=value), log=log)
    assert type(info.value) is error
    assert needle in info.value.message and "MY_VAR" in info.value.message
    assert CANARY not in info.value.line()


def test_one_good_one_missing_reference_fails_whole(aws: Any, log: Logger) -> None:
    aws.create_secret(Name="kptboard/prod/ok", SecretString="v")
    refs = _refs(GOOD="secretsmanager:kptboard/prod/ok", BAD="secretsmanager:kptboard/prod/missing")
    with pytest.raises(NotFoundError, match="BAD"):
        sm.resolve_refs(lambda _r: aws, refs, log=log)


def test_version_and_stage_that_do_not_match_is_66(
    aws: Any, log: Logger, rotated: dict[str, str]
) -> None:
    refs = _refs(X=f"secretsmanager:kptboard/prod/db::AWSCURRENT:{rotated['old']}")
    with pytest.raises(NotFoundError):
        sm.resolve_refs(lambda _r: aws, refs, log=log)


def test_access_denied_on_a_reference_names_action_and_secret(log: Logger) -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_secret_value", service_error_code="AccessDeniedException", http_status_code=400
        )
        with pytest.raises(AccessDeniedError) as info:
            sm.resolve_refs(lambda _r: client, _refs(V="secretsmanager:app/x"), log=log)
    assert "secretsmanager:GetSecretValue" in info.value.message
    assert "secretsmanager:app/x" in info.value.message
    assert info.value.__cause__ is not None


def test_reference_reads_awscurrent_after_stage_move(aws: Any, log: Logger) -> None:
    first = aws.create_secret(Name="app/token", SecretString="old")["VersionId"]
    new = aws.put_secret_value(
        SecretId="app/token", SecretString="new", VersionStages=["AWSPENDING"]
    )["VersionId"]
    aws.update_secret_version_stage(
        SecretId="app/token",
        VersionStage="AWSCURRENT",
        MoveToVersionId=new,
        RemoveFromVersionId=first,
    )
    items = sm.resolve_refs(lambda _r: aws, _refs(T="secretsmanager:app/token"), log=log)
    assert (items["T"].value.reveal(), items["T"].version) == ("new", new)


# ---------------------------------------------------------------- value shaping (properties)

_scalars = st.one_of(
    st.text(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,15}", fullmatch=True)


@given(st.dictionaries(_keys, _scalars, max_size=8))
def test_expanded_values_are_strings_and_json_scalars_as_written(body: dict[str, object]) -> None:
    text = json.dumps(body)
    got = expand(text, name="p/s", key="s", log=Logger(stream=io.StringIO()))
    expected = [
        (f"s/{k}", f"p/s:{k}", v if isinstance(v, str) else json.dumps(v)) for k, v in body.items()
    ]
    assert got == expected


@given(st.text())
def test_text_that_is_not_a_json_object_passes_unchanged(text: str) -> None:
    try:
        is_object = isinstance(json.loads(text), dict)
    except ValueError:
        is_object = False
    if not is_object:
        got = expand(text, name="p/s", key="s", log=Logger(stream=io.StringIO()))
        assert got == [("s", "p/s", text)]


def test_an_object_nested_past_the_recursion_limit_is_65_and_a_deep_array_one_value() -> None:
    quiet = Logger(stream=io.StringIO())
    deep_object = '{"a":' * 5000 + "1" + "}" * 5000
    with pytest.raises(DataError, match="nested too deeply"):
        expand(deep_object, name="p/s", key="s", log=quiet)
    deep_array = "[" * 5000 + "]" * 5000
    assert expand(deep_array, name="p/s", key="s", log=quiet) == [("s", "p/s", deep_array)]
