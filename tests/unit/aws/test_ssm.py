"""secrets_agent.aws.ssm against botocore's Stubber and a request-inspecting handler: pagination
(empty pages with a NextToken), boundaries, GetParameters batches, error mapping."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.session import get_session
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from secrets_agent.aws import ssm
from secrets_agent.core.errors import AgentError, DataError, NotFoundError
from secrets_agent.core.references import SsmRef
from secrets_agent.output.logs import Logger

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def session() -> Any:
    return get_session()


@pytest.fixture
def client(session: Any) -> Any:
    # One session for the module: its loaders cache the service model, so clients are cheap.
    return session.create_client(
        "ssm",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def log() -> Logger:
    return Logger(level="debug", fmt="json", stream=io.StringIO())


def param(name: str, value: str = "v", version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "SecureString",
        "Value": value,
        "Version": version,
        "LastModifiedDate": WHEN,
        "ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/" + name.lstrip("/"),
        "DataType": "text",
        **extra,
    }


def by_path_call(path: str, token: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {
        "Path": path,
        "Recursive": True,
        "WithDecryption": True,
        "MaxResults": 10,
    }
    if token:
        call["NextToken"] = token
    return call


# --- GetParametersByPath ----------------------------------------------------------------


def test_path_pages_through_empty_pages_until_no_token(client: Any, log: Logger) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_parameters_by_path",
            {
                "Parameters": [param("/kptboard/prod/a", "1"), param("/kptboard/prod/b/c", "2")],
                "NextToken": "t1",
            },
            by_path_call("/kptboard/prod"),
        )
        stub.add_response(
            "get_parameters_by_path",
            {"Parameters": [], "NextToken": "t2"},
            by_path_call("/kptboard/prod", "t1"),
        )
        stub.add_response(
            "get_parameters_by_path",
            {"Parameters": [], "NextToken": "t3"},
            by_path_call("/kptboard/prod", "t2"),
        )
        stub.add_response(
            "get_parameters_by_path",
            {
                "Parameters": [
                    param("/kptboard/prod/d", "4", version=7),
                    param("/kptboard/production/x", "outside"),
                ]
            },
            by_path_call("/kptboard/prod", "t3"),
        )
        items = ssm.load_path(client, "/kptboard/prod/", log=log)
        stub.assert_no_pending_responses()
    assert [(i.key, i.source_name, i.value.reveal(), i.version, i.source) for i in items] == [
        ("a", "/kptboard/prod/a", "1", "1", "ssm"),
        ("b/c", "/kptboard/prod/b/c", "2", "1", "ssm"),
        ("d", "/kptboard/prod/d", "4", "7", "ssm"),
    ]


def test_path_with_only_empty_pages_is_not_found(client: Any, log: Logger) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_parameters_by_path", {"Parameters": [], "NextToken": "t1"}, by_path_call("/app")
        )
        stub.add_response("get_parameters_by_path", {"Parameters": []}, by_path_call("/app", "t1"))
        with pytest.raises(NotFoundError) as info:
            ssm.load_path(client, "/app", log=log)
        stub.assert_no_pending_responses()
    assert info.value.exit_code == 66
    assert "'/app'" in info.value.message


def test_path_with_only_outside_parameters_is_not_found(client: Any, log: Logger) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_parameters_by_path",
            {"Parameters": [param("/kptboard/production/x")]},
            by_path_call("/kptboard/prod"),
        )
        with pytest.raises(NotFoundError):
            ssm.load_path(client, "/kptboard/prod", log=log)


def test_failure_on_a_later_page_fails_the_whole_load(client: Any, log: Logger) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_parameters_by_path",
            {"Parameters": [param("/app/a")], "NextToken": "t1"},
            by_path_call("/app"),
        )
        stub.add_client_error("get_parameters_by_path", "ThrottlingException", http_status_code=400)
        with pytest.raises(AgentError) as info:
            ssm.load_path(client, "/app", log=log)
    assert info.value.exit_code == 69


def test_parameter_without_value_is_a_data_error(client: Any, log: Logger) -> None:
    broken = param("/app/a")
    del broken["Value"]
    with Stubber(client) as stub:
        stub.add_response("get_parameters_by_path", {"Parameters": [broken]}, by_path_call("/app"))
        with pytest.raises(DataError, match="/app/a"):
            ssm.load_path(client, "/app", log=log)


# --- DescribeParameters + GetParameters (name-prefix mode) ------------------------------


def describe_call(token: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {
        "ParameterFilters": [{"Key": "Name", "Option": "BeginsWith", "Values": ["kptboard-rails"]}],
        "MaxResults": 50,
    }
    if token:
        call["NextToken"] = token
    return call


def meta(name: str) -> dict[str, Any]:
    return {"Name": name, "Type": "SecureString", "Version": 1}


def test_name_prefix_respects_the_boundary(client: Any, log: Logger) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "describe_parameters",
            {
                "Parameters": [meta("kptboard-rails.secret.key.base"), meta("kptboard-railsx.foo")],
                "NextToken": "t1",
            },
            describe_call(),
        )
        stub.add_response(
            "describe_parameters", {"Parameters": [], "NextToken": "t2"}, describe_call("t1")
        )
        stub.add_response(
            "describe_parameters",
            {"Parameters": [meta("kptboard-rails-staging.foo"), meta("kptboard-rails/db/url")]},
            describe_call("t2"),
        )
        stub.add_response(
            "get_parameters",
            {
                "Parameters": [
                    param("kptboard-rails.secret.key.base", "skb"),
                    param("kptboard-rails/db/url", "url"),
                ],
            },
            {
                "Names": ["kptboard-rails.secret.key.base", "kptboard-rails/db/url"],
                "WithDecryption": True,
            },
        )
        items = ssm.load_name_prefix(client, "kptboard-rails", log=log)
        stub.assert_no_pending_responses()
    assert sorted((i.key, i.source_name, i.value.reveal()) for i in items) == [
        ("db/url", "kptboard-rails/db/url", "url"),
        ("secret.key.base", "kptboard-rails.secret.key.base", "skb"),
    ]


def test_name_prefix_with_nothing_inside_the_boundary_is_not_found(
    client: Any, log: Logger
) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "describe_parameters",
            {"Parameters": [meta("kptboard-railsx.foo"), meta("kptboard-rails-staging.foo")]},
            describe_call(),
        )
        with pytest.raises(NotFoundError, match="kptboard-rails"):
            ssm.load_name_prefix(client, "kptboard-rails", log=log)
        stub.assert_no_pending_responses()


# --- GetParameters batches --------------------------------------------------------------


class FakeStore:
    """Answers GetParameters from a dict, as AWS does, and records every batch asked."""

    def __init__(self, values: dict[str, dict[str, str]]) -> None:
        self.values = values  # name -> selector ("" for none) -> value
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-call.ssm.GetParameters", self.handler)

    def handler(self, params: dict[str, Any], **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        names: list[str] = json.loads(params["body"])["Names"]
        with self.lock:
            self.batches.append(names)
        found, invalid = [], []
        for query in names:
            name, _, selector = query.partition(":")
            value = self.values.get(name, {}).get(selector)
            if value is None:
                invalid.append(query)
                continue
            extra: dict[str, Any] = {"Selector": ":" + selector} if selector else {}
            found.append(param(name, value, **extra))
        parsed = {
            "Parameters": found,
            "InvalidParameters": invalid,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return AWSResponse("https://ssm", 200, {}, None), parsed


def test_25_names_go_in_batches_of_at_most_10(client: Any) -> None:
    names = [f"/app/p{i:02d}" for i in range(25)]
    store = FakeStore({n: {"": f"value-{n}"} for n in names})
    store.attach(client)
    found = ssm.get_by_names(client, names)
    assert {q: p["Value"] for q, p in found.items()} == {n: f"value-{n}" for n in names}
    assert all(len(batch) <= 10 for batch in store.batches)
    asked = [q for batch in store.batches for q in batch]
    assert sorted(asked) == names  # each name asked exactly once
    assert len(store.batches) == 3


def test_invalid_parameter_in_a_later_batch_is_not_found_naming_it(client: Any) -> None:
    names = [f"/app/p{i:02d}" for i in range(25)]
    store = FakeStore({n: {"": "v"} for n in names if n != "/app/p23"})
    store.attach(client)
    with pytest.raises(NotFoundError) as info:
        ssm.get_by_names(client, names)
    assert info.value.exit_code == 66
    assert "'/app/p23'" in info.value.message
    assert "'/app/p22'" not in info.value.message


def test_never_two_selectors_of_one_name_in_the_same_batch(client: Any) -> None:
    store = FakeStore(
        {
            "/app/db": {"": "current", "1": "first", "2": "second", "live": "labelled"},
            "/app/other": {"": "o", "3": "o3"},
        }
    )
    store.attach(client)
    queries = ["/app/db", "/app/db:1", "/app/db:2", "/app/db:live", "/app/other", "/app/other:3"]
    found = ssm.get_by_names(client, queries)
    assert {q: p["Value"] for q, p in found.items()} == {
        "/app/db": "current",
        "/app/db:1": "first",
        "/app/db:2": "second",
        "/app/db:live": "labelled",
        "/app/other": "o",
        "/app/other:3": "o3",
    }
    for batch in store.batches:
        bases = [q.split(":", 1)[0] for q in batch]
        assert len(bases) == len(set(bases)), batch
        assert len(batch) <= 10


def test_batches_pure() -> None:
    queries = [f"/n{i}" for i in range(23)] + ["/n0:1", "/n0:2"]
    batches = ssm.query_batches(queries)
    assert sorted(q for b in batches for q in b) == sorted(queries)
    for batch in batches:
        assert len(batch) <= 10
        bases = [q.split(":", 1)[0] for q in batch]
        assert len(bases) == len(set(bases))


def test_resolve_refs_maps_variables_and_asks_each_query_once(client: Any) -> None:
    store = FakeStore({"/app/db": {"": "cur", "3": "v3"}, "flat": {"": "f"}})
    store.attach(client)
    refs = {
        "DB": SsmRef(name="/app/db"),
        "DB_AGAIN": SsmRef(name="/app/db"),
        "DB_V3": SsmRef(name="/app/db", selector="3"),
        "FLAT": SsmRef(name="flat"),
    }
    items = ssm.resolve_refs(client, refs)
    assert {v: (i.value.reveal(), i.source_name, i.key) for v, i in items.items()} == {
        "DB": ("cur", "/app/db", None),
        "DB_AGAIN": ("cur", "/app/db", None),
        "DB_V3": ("v3", "/app/db", None),
        "FLAT": ("f", "flat", None),
    }
    asked = [q for batch in store.batches for q in batch]
    assert sorted(asked) == ["/app/db", "/app/db:3", "flat"]


# --- error mapping ----------------------------------------------------------------------

ERRORS = [
    ("AccessDeniedException", 400, 77),
    ("403", 403, 77),
    ("ThrottlingException", 400, 69),
    ("ParameterNotFound", 400, 66),
    ("InvalidKeyId", 400, 77),
    ("InternalServerError", 500, 69),
]


@pytest.fixture(params=ERRORS, ids=[e[0] for e in ERRORS])
def error(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, int]]:
    yield request.param


def test_error_mapping_get_parameters_by_path(
    client: Any, log: Logger, error: tuple[str, int, int]
) -> None:
    code, status, exit_code = error
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_parameters_by_path",
            code,
            service_message="the message mentions nothing secret",
            http_status_code=status,
        )
        with pytest.raises(AgentError) as info:
            ssm.load_path(client, "/kptboard/prod", log=log)
    assert info.value.exit_code == exit_code
    assert "/kptboard/prod" in info.value.message


def test_error_mapping_get_parameters(client: Any, error: tuple[str, int, int]) -> None:
    code, status, exit_code = error
    with Stubber(client) as stub:
        stub.add_client_error("get_parameters", code, http_status_code=status)
        with pytest.raises(AgentError) as info:
            ssm.get_by_names(client, ["/app/secret_key_base"])
    assert info.value.exit_code == exit_code
    assert "/app/secret_key_base" in info.value.message


def test_error_mapping_describe_parameters(
    client: Any, log: Logger, error: tuple[str, int, int]
) -> None:
    code, status, exit_code = error
    with Stubber(client) as stub:
        stub.add_client_error("describe_parameters", code, http_status_code=status)
        with pytest.raises(AgentError) as info:
            ssm.load_name_prefix(client, "kptboard-rails", log=log)
    assert info.value.exit_code == exit_code


def test_arn_reference_of_the_answering_account_resolves(client: Any) -> None:
    FakeStore({"/app/db": {"": "mine"}}).attach(client)
    ref = SsmRef(name="/app/db", region="us-east-1", partition="aws", account="123456789012")
    assert ssm.resolve_refs(client, {"DB": ref})["DB"].value.reveal() == "mine"


def test_arn_reference_of_another_account_is_refused(client: Any) -> None:
    # Read by name, the parameter comes from the task's own account: never pass it off as
    # the other account's parameter.
    FakeStore({"/app/db": {"": "same name, wrong account"}}).attach(client)
    ref = SsmRef(name="/app/db", region="us-east-1", partition="aws", account="999999999999")
    with pytest.raises(NotFoundError) as info:
        ssm.resolve_refs(client, {"DB": ref})
    assert "DB" in info.value.message
    assert "999999999999" in info.value.message
    assert "wrong account" not in info.value.line()


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    error: Exception = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetParameters",
    )
    return error


def _other_errors() -> list[tuple[str, Exception, int]]:
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    return [
        ("no credentials", NoCredentialsError(), 77),
        ("no region", NoRegionError(), 78),
        ("refused", EndpointConnectionError(endpoint_url="https://ssm"), 69),
        ("connect timeout", ConnectTimeoutError(endpoint_url="https://ssm"), 69),
        ("read timeout", ReadTimeoutError(endpoint_url="https://ssm"), 69),
        ("anything else", RuntimeError("boom"), 69),
    ]


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("ExpiredTokenException", 400, 77),
        ("UnrecognizedClientException", 400, 77),
        ("", 403, 77),
        ("KMSAccessDeniedException", 400, 77),
        ("ParameterVersionNotFound", 400, 66),
        ("ValidationException", 400, 65),
        ("ServiceUnavailable", 503, 69),
        ("InternalServerError", 500, 69),
    ],
)
def test_map_aws_error_client_errors(code: str, status: int, exit_code: int) -> None:
    from secrets_agent.aws.errors import map_aws_error

    mapped = map_aws_error(_client_error(code, status), action="ssm:GetParameters", resource="R")
    assert mapped.exit_code == exit_code


def test_map_aws_error_other_errors() -> None:
    from secrets_agent.aws.errors import map_aws_error

    for what, exc, exit_code in _other_errors():
        mapped = map_aws_error(exc, action="ssm:GetParameters", resource="SSM path '/app'")
        assert mapped.exit_code == exit_code, what
    kept = NotFoundError("x")
    assert map_aws_error(kept, action="a", resource="r") is kept


@given(
    st.lists(
        st.tuples(
            st.sampled_from([f"/n{i}" for i in range(15)]),
            st.sampled_from(["", ":1", ":2", ":live"]),
        ),
        unique=True,
        max_size=60,
    )
)
def test_batches_property(pairs: list[tuple[str, str]]) -> None:
    queries = [name + sel for name, sel in pairs]
    batches = ssm.query_batches(queries)
    assert sorted(q for b in batches for q in b) == sorted(queries)
    for batch in batches:
        assert 1 <= len(batch) <= 10
        bases = [q.split(":", 1)[0] for q in batch]
        assert len(bases) == len(set(bases))
