"""secrets_agent.aws.model_lookup answers "known service?" exactly as botocore's full scan does."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from secrets_agent.aws.model_lookup import KnownServices, speed_up

TYPES = ("service-2", "paginators-1", "waiters-2", "endpoint-rule-set-1")
NAMES = (
    "ssm",
    "secretsmanager",
    "kms",
    "sts",
    "sso-oidc",
    "s3",
    "nope",
    "",
    ".",
    "..",
    "../ssm",
    "ssm/2014-11-06",
    "SSM",
)


@pytest.mark.parametrize("type_name", TYPES)
def test_membership_and_listing_match_the_full_scan(type_name: str) -> None:
    loader = Loader()
    full = Loader.list_available_services(loader, type_name)
    known = KnownServices(Loader(), type_name)
    for name in NAMES:
        assert (name in known) == (name in full), name
    assert list(known) == full
    assert len(known) == len(full)
    assert known[0] == full[0]


def test_clients_still_work_and_unknown_services_still_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = botocore.session.get_session()
    speed_up(session)
    client = session.create_client("ssm", region_name="eu-west-1")
    assert client.can_paginate("get_parameters_by_path")
    assert client.meta.region_name == "eu-west-1"
    with pytest.raises(UnknownServiceError) as info:
        session.create_client("no-such-service", region_name="eu-west-1")
    assert "ssm" in str(info.value)  # botocore's message still lists the known services


def test_extra_data_paths_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "acme-widgets" / "2020-01-01"
    model.mkdir(parents=True)
    (model / "service-2.json").write_text(json.dumps({"metadata": {}}), encoding="utf-8")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    session = botocore.session.get_session()
    speed_up(session)
    loader = session.get_component("data_loader")
    assert "acme-widgets" in loader.list_available_services("service-2")
    assert "acme-widgets" not in loader.list_available_services("paginators-1")
    assert "ssm" in loader.list_available_services("service-2")
