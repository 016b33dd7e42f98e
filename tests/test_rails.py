"""End to end: a real Rails app in production, started through the entrypoint, against moto.

Rails in production answers 500 without SECRET_KEY_BASE; a 200 carrying the digest of the
stored key proves the agent delivered it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ENTRYPOINT, base_env
from tests.moto_server import MotoServer
from tests.rails_app import RailsApp

KEY = "f00d" * 32 + "\n$not-a-var 'quoted' \"double\""


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_rails_without_secret_refuses_to_serve(moto: MotoServer, tmp_path: Path) -> None:
    """The control: without the agent's help, production Rails answers 500."""
    env = base_env(moto.url)
    app = RailsApp([sys.executable, str(ENTRYPOINT)], env, tmp_path / "rails.log")
    try:
        app.wait_ready()
        status, _ = app.get("/health")
        assert status == 500
        assert "secret_key_base" in app.log()
    finally:
        app.stop()


def test_rails_gets_secret_key_base_from_ssm(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    ssm = boto_client("ssm")
    ssm.put_parameter(Name="kptboard-rails.secret.key.base", Value=KEY, Type="SecureString")
    ssm.put_parameter(
        Name="kptboard-rails.database.url", Value="postgres://db/x", Type="SecureString"
    )
    env = base_env(moto.url)
    env["PARAMETER_STORE_PREFIX"] = "kptboard-rails"
    app = RailsApp([sys.executable, str(ENTRYPOINT)], env, tmp_path / "rails.log")
    try:
        app.wait_ready()
        assert app.get("/health")[0] == 200
        assert app.get_json("/secret")["secret_key_base_sha256"] == sha(KEY)
        assert app.get_json("/env/DATABASE_URL")["sha256"] == sha("postgres://db/x")
        # exec mode: puma replaced the agent, so it has the agent's PID.
        assert app.get_json("/secret")["pid"] == app.proc.pid
        assert KEY.splitlines()[0] not in app.log()
    finally:
        app.proc.send_signal(signal.SIGTERM)
        code = app.stop()
    # puma 5 re-raises SIGTERM after a graceful stop.
    assert code in (0, -signal.SIGTERM), app.log()
    assert "Gracefully stopping" in app.log() or code == 0


def test_rails_gets_database_password_from_secrets_manager_json(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """SECRET_KEY_BASE from SSM, database credentials from one Secrets Manager JSON secret,
    and one more value through an explicit reference: the real app sees all three."""
    boto_client("ssm").put_parameter(
        Name="/kptboard/prod/secret_key_base", Value=KEY, Type="SecureString"
    )
    sm = boto_client("secretsmanager")
    sm.create_secret(
        Name="kptboard/prod/database",
        SecretString=json.dumps({"username": "kptboard", "password": "pa$$ 'w0rd'", "port": 5432}),
    )
    sm.create_secret(Name="shared/smtp", SecretString=json.dumps({"password": "smtp-pw"}))
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/kptboard/prod",
        "SECRETS_MANAGER_PREFIX": "kptboard/prod",
        "SMTP_PASSWORD": "secretsmanager:shared/smtp:password",
    }
    app = RailsApp([sys.executable, str(ENTRYPOINT)], env, tmp_path / "rails.log")
    try:
        app.wait_ready()
        assert app.get_json("/secret")["secret_key_base_sha256"] == sha(KEY)
        assert app.get_json("/env/DATABASE_PASSWORD")["sha256"] == sha("pa$$ 'w0rd'")
        assert app.get_json("/env/DATABASE_USERNAME")["sha256"] == sha("kptboard")
        assert app.get_json("/env/DATABASE_PORT")["sha256"] == sha("5432")
        assert app.get_json("/env/SMTP_PASSWORD")["sha256"] == sha("smtp-pw")
    finally:
        app.stop()
