"""Unit tests for secrets_agent.aws.envelope against moto's in-process KMS (mock_aws)."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secrets_agent.aws import envelope, envelope_errors
from secrets_agent.core.errors import (
    AccessDeniedError,
    ConfigError,
    DataError,
    NotFoundError,
    ServiceError,
    UnreachableError,
)
from secrets_agent.core.model import Record, Secret
from secrets_agent.output.logs import Logger
from tests.support.fresh import imported_by

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
CANARY = "canary-7f3a9c-plaintext-must-never-show"


@dataclass
class Kms:
    session: Any
    client: Any
    key: str
    other_key: str


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kms]:
    import botocore.session
    from moto import mock_aws

    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    with mock_aws():
        session = botocore.session.Session()
        client = session.create_client("kms", region_name=REGION)
        key = client.create_key()["KeyMetadata"]["Arn"]
        other = client.create_key()["KeyMetadata"]["Arn"]
        yield Kms(session, client, key, other)


def record(name: str, value: str, **kw: Any) -> Record:
    fields: dict[str, Any] = {"source": "environment", "source_name": name} | kw
    return Record(name=name, value=Secret(value), **fields)


def quiet_log() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    return Logger(level="debug", fmt="json", stream=stream), stream


def decrypt(kms: Kms, records: list[Record], key_arns: list[str] | None = None) -> list[Record]:
    log, _ = quiet_log()
    return envelope.decrypt_records(
        records,
        key_arns=[kms.key] if key_arns is None else key_arns,
        botocore_session=kms.session,
        log=log,
    )


def encrypt(kms: Kms, plaintext: str, name: str, key: str | None = None) -> str:
    return envelope.encrypt_value(
        plaintext.encode(), key_id=key or kms.key, name=name, botocore_session=kms.session
    )


def flip(value: str, offset: int) -> str:
    raw = bytearray(base64.b64decode(value[len(envelope.PREFIX) :]))
    raw[offset % len(raw)] ^= 0x01
    return envelope.PREFIX + base64.b64encode(bytes(raw)).decode()


def test_round_trip_keeps_record_fields(kms: Kms) -> None:
    value = encrypt(kms, "s3cr=t\nline 'two' $x é", "DATABASE_URL")
    assert value.startswith("aesdk:")
    assert "s3cr" not in value
    plain = record("PLAIN", "not encrypted")
    enc = record("DATABASE_URL", value, source="ssm", source_name="/app/db", version="3")
    out = decrypt(kms, [plain, enc])
    assert out[0] is plain
    assert out[1].value.reveal() == "s3cr=t\nline 'two' $x é"
    assert (out[1].name, out[1].source, out[1].source_name, out[1].version) == (
        "DATABASE_URL",
        "ssm",
        "/app/db",
        "3",
    )
    assert out[1].encrypted is True


def test_message_is_bound_to_the_name_with_one_committing_signed_key(kms: Kms) -> None:
    sdk = envelope.Sdk()
    raw = base64.b64decode(encrypt(kms, "x", "API_TOKEN")[len("aesdk:") :])
    header, _ = sdk.deserialize_header(io.BytesIO(raw), 1)
    assert header.encryption_context["secrets-agent:name"] == "API_TOKEN"
    assert [e.key_provider.key_info.decode() for e in header.encrypted_data_keys] == [kms.key]
    assert header.algorithm.is_committing()


def test_several_values_decrypt_in_order(kms: Kms) -> None:
    names = [f"VAR_{i}" for i in range(12)]
    records = [record(n, encrypt(kms, f"value-{n}", n)) for n in names]
    out = decrypt(kms, records)
    assert [r.name for r in out] == names
    assert [r.value.reveal() for r in out] == [f"value-{n}" for n in names]


def test_no_aesdk_value_needs_no_keys_and_returns_records(kms: Kms) -> None:
    records = [record("A", "plain"), record("B", "ssm:/x")]
    assert decrypt(kms, records, key_arns=[]) == records


def test_missing_key_list_is_a_config_error(kms: Kms) -> None:
    with pytest.raises(ConfigError) as info:
        decrypt(kms, [record("TOKEN", encrypt(kms, CANARY, "TOKEN"))], key_arns=[])
    assert info.value.exit_code == 78
    assert "SECRETS_AGENT_KMS_KEY_ARNS" in info.value.line()
    assert "TOKEN" in info.value.line()


def test_value_moved_to_another_variable_is_refused(kms: Kms) -> None:
    value = encrypt(kms, CANARY, "SECRET_KEY_BASE")
    with pytest.raises(DataError) as info:
        decrypt(kms, [record("DATABASE_PASSWORD", value)])
    line = info.value.line()
    assert info.value.exit_code == 65
    assert "SECRET_KEY_BASE" in line and "DATABASE_PASSWORD" in line
    assert CANARY not in line


def test_value_without_name_context_is_refused(kms: Kms) -> None:
    sdk = envelope.Sdk()
    provider = sdk.kms_provider(key_ids=[kms.key], botocore_session=kms.session, timeout=5)
    message, _ = sdk.client().encrypt(
        source=CANARY.encode(), key_provider=provider, encryption_context={"purpose": "x"}
    )
    value = "aesdk:" + base64.b64encode(message).decode()
    with pytest.raises(DataError, match="not bound to a variable"):
        decrypt(kms, [record("TOKEN", value)])


def test_key_outside_the_allowed_list_is_refused(kms: Kms) -> None:
    value = encrypt(kms, CANARY, "TOKEN", key=kms.other_key)
    with pytest.raises(DataError) as info:
        decrypt(kms, [record("TOKEN", value)])
    assert kms.other_key in info.value.line()
    assert "SECRETS_AGENT_KMS_KEY_ARNS" in info.value.line()


def test_two_data_keys_are_refused(kms: Kms) -> None:
    sdk = envelope.Sdk()
    keys = [kms.key, kms.other_key]
    provider = sdk.kms_provider(key_ids=keys, botocore_session=kms.session, timeout=5)
    loose = sdk.module.EncryptionSDKClient(
        commitment_policy=sdk.module.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    message, _ = loose.encrypt(
        source=b"x", key_provider=provider, encryption_context={"secrets-agent:name": "TOKEN"}
    )
    value = "aesdk:" + base64.b64encode(message).decode()
    with pytest.raises(DataError, match="more than one encrypted data key"):
        decrypt(kms, [record("TOKEN", value)], key_arns=keys)


def test_every_flipped_byte_is_refused(kms: Kms, capfd: pytest.CaptureFixture[str]) -> None:
    """No single-byte flip decrypts. KMS answers a flip inside its own blob's key reference
    with AccessDenied (real KMS too), which stays 77; every other flip is a data error."""
    value = encrypt(kms, CANARY, "TOKEN")
    raw = base64.b64decode(value[len("aesdk:") :])
    header, _ = envelope.Sdk().deserialize_header(io.BytesIO(raw), 1)
    blob = next(iter(header.encrypted_data_keys)).encrypted_data_key
    blob_at = raw.index(blob)
    offsets = sorted({*range(0, len(raw), 3), len(raw) - 1})
    kinds: dict[str, int] = {}
    for offset in offsets:
        with pytest.raises((DataError, AccessDeniedError)) as info:
            decrypt(kms, [record("TOKEN", flip(value, offset))])
        kind = type(info.value).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "AccessDeniedError":
            assert blob_at <= offset < blob_at + len(blob), offset
            assert "corrupted" in info.value.line()
        assert "TOKEN" in info.value.line()
        assert CANARY not in info.value.line()
    assert kinds["DataError"] > 0.8 * len(offsets)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert CANARY not in captured.err + captured.out


@pytest.mark.parametrize("keep", [0, 10, 100, 300, -1])
def test_truncated_value_is_refused(kms: Kms, keep: int) -> None:
    value = encrypt(kms, CANARY, "TOKEN")
    raw = base64.b64decode(value[len("aesdk:") :])
    cut = "aesdk:" + base64.b64encode(raw[:keep]).decode()
    with pytest.raises(DataError):
        decrypt(kms, [record("TOKEN", cut)])


@pytest.mark.parametrize("bad", ["aesdk:", "aesdk:!!not base64!!", "aesdk:QUJD"])
def test_malformed_value_is_refused(kms: Kms, bad: str) -> None:
    with pytest.raises(DataError) as info:
        decrypt(kms, [record("TOKEN", bad)])
    assert "TOKEN" in info.value.line()


@pytest.mark.parametrize("plaintext", [b"a\x00b", b"\xff\xfe"])
def test_value_unusable_as_environment_is_refused(kms: Kms, plaintext: bytes) -> None:
    with pytest.raises(DataError, match="TOKEN"):
        envelope.encrypt_value(
            plaintext, key_id=kms.key, name="TOKEN", botocore_session=kms.session
        )
    sdk = envelope.Sdk()
    provider = sdk.kms_provider(key_ids=[kms.key], botocore_session=kms.session, timeout=5)
    message, _ = sdk.client().encrypt(
        source=plaintext, key_provider=provider, encryption_context={"secrets-agent:name": "TOKEN"}
    )
    with pytest.raises(DataError, match="TOKEN"):
        decrypt(kms, [record("TOKEN", "aesdk:" + base64.b64encode(message).decode())])


def test_first_failure_in_record_order_is_raised(kms: Kms) -> None:
    good = [record(f"OK_{i}", encrypt(kms, "v", f"OK_{i}")) for i in range(3)]
    bad_a = record("BAD_A", encrypt(kms, "v", "ELSEWHERE"))
    bad_b = record("BAD_B", "aesdk:QUJD")
    with pytest.raises(DataError, match="BAD_A"):
        decrypt(kms, [*good, bad_a, bad_b])


def test_debug_log_names_but_never_reveals(kms: Kms) -> None:
    log, stream = quiet_log()
    value = encrypt(kms, CANARY, "TOKEN")
    envelope.decrypt_records(
        [record("TOKEN", value)], key_arns=[kms.key], botocore_session=kms.session, log=log
    )
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"aesdk value decrypted", "aesdk values decrypted"} <= {e["event"] for e in events}
    assert any(e.get("name") == "TOKEN" and e.get("key") == kms.key for e in events)
    assert CANARY not in stream.getvalue()
    assert value[10:40] not in stream.getvalue()


def test_encrypt_with_unknown_key_is_not_found(kms: Kms) -> None:
    missing = kms.key.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(NotFoundError):
        encrypt(kms, CANARY, "TOKEN", key=missing)


def test_kms_clients_are_bounded(kms: Kms) -> None:
    envelope.Sdk().kms_provider(key_ids=[kms.key], botocore_session=kms.session, timeout=2)
    # Every KMS client the SDK creates from the session gets the session's bounds.
    cfg = kms.session.create_client("kms", region_name=REGION).meta.config
    assert cfg.connect_timeout <= 2 and cfg.read_timeout <= 2
    assert cfg.retries["total_max_attempts"] == envelope.MAX_ATTEMPTS
    assert cfg.user_agent_appid == "secrets-agent"  # "app/secrets-agent" in the User-Agent


def test_unreachable_kms_is_a_service_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    from tests.support.moto_server import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    session = botocore.session.Session()
    key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    with pytest.raises(ServiceError):
        envelope.encrypt_value(b"x", key_id=key, name="TOKEN", botocore_session=session, timeout=2)


def client_error(code: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    error: Exception = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Decrypt",
    )
    return error


@pytest.mark.parametrize(
    ("exc", "encrypting", "expected"),
    [
        (client_error("AccessDeniedException"), False, AccessDeniedError),
        (client_error("403", 403), False, AccessDeniedError),
        (client_error("SomethingNew", 403), False, AccessDeniedError),
        (client_error("DisabledException"), False, AccessDeniedError),
        (client_error("InvalidCiphertextException"), False, DataError),
        (client_error("IncorrectKeyException"), False, DataError),
        (client_error("NotFoundException"), False, DataError),
        (client_error("NotFoundException"), True, NotFoundError),
        (client_error("ThrottlingException"), False, UnreachableError),
        (client_error("KMSInternalException", 500), False, UnreachableError),
        (None, False, UnreachableError),  # EndpointConnectionError
        (None, True, AccessDeniedError),  # NoCredentialsError
        (ValueError("sdk"), False, DataError),
    ],
)
def test_failure_mapping(exc: Exception | None, encrypting: bool, expected: type) -> None:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if exc is None:
        exc = NoCredentialsError() if encrypting else EndpointConnectionError(endpoint_url="x")
    err = envelope_errors.kms_failure(
        exc, subject="the value of TOKEN", key="k", encrypting=encrypting
    )
    assert type(err) is expected


def test_sdk_is_not_imported_without_an_aesdk_value() -> None:
    code = (
        "import io\n"
        "from secrets_agent.aws import envelope\n"
        "from secrets_agent.output.logs import Logger\n"
        "from secrets_agent.core.model import Record, Secret\n"
        "r = [Record(name='A', value=Secret('x'), source='environment', source_name='A')]\n"
        "out = envelope.decrypt_records(r, key_arns=[], botocore_session=None,\n"
        "    log=Logger(stream=io.StringIO()))\n"
        "assert out == r\n"
    )
    assert imported_by(code, ["aws_encryption_sdk", "botocore", "boto3", "cryptography"]) == []
