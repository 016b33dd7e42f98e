"""End to end: a real Rails app in production, started through the entrypoint, against moto.

Rails in production answers 500 without SECRET_KEY_BASE; a 200 carrying the digest of the
stored key proves the agent delivered it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ENTRYPOINT, base_env
from tests.support.moto_server import MotoServer
from tests.support.rails_app import RailsApp

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


# Rails' own encryption (ActiveSupport::EncryptedConfiguration, as `rails credentials:edit`
# uses): a new master key, and the YAML on stdin encrypted with it into
# config/credentials/production.yml.enc. The key goes to stdout for the test alone.
MAKE_CREDENTIALS = """
require "fileutils"
require "active_support"
require "active_support/encrypted_configuration"
key = ActiveSupport::EncryptedConfiguration.generate_key
ENV["SECRETS_AGENT_TEST_KEY"] = key
FileUtils.mkdir_p("config/credentials")
ActiveSupport::EncryptedConfiguration.new(
  config_path: "config/credentials/production.yml.enc", key_path: File::NULL,
  env_key: "SECRETS_AGENT_TEST_KEY", raise_if_missing_key: true,
).write($stdin.read)
print key
"""


def test_rails_reads_credentials_with_the_master_key_file(
    moto: MotoServer, boto_client: Any, tmp_path: Path
) -> None:
    """The Rails master key case end to end: the key is a SecureString, the agent writes it to
    config/credentials/production.key (SECRETS_AGENT_FILES), and Rails decrypts
    config/credentials/production.yml.enc with it; RAILS_MASTER_KEY is in no environment."""
    app_dir = tmp_path / "app"
    shutil.copytree(Path(__file__).resolve().parents[1] / "support" / "rails", app_dir)
    secret_key_base = secrets.token_hex(64)
    api_token = secrets.token_urlsafe(24)
    made = subprocess.run(
        ["ruby", "-e", MAKE_CREDENTIALS],
        input=f"secret_key_base: {secret_key_base}\napi_token: {api_token}\n",
        capture_output=True,
        text=True,
        cwd=str(app_dir),
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    master_key = made.stdout
    # Asserted without quoting the key: a failure message must not print it.
    key_is_hex = len(master_key) == 32 and all(c in "0123456789abcdef" for c in master_key)
    assert key_is_hex
    assert not (app_dir / "config/credentials/production.key").exists()
    boto_client("ssm").put_parameter(
        Name="/kptboard/prod/rails_master_key", Value=master_key, Type="SecureString"
    )
    env = base_env(moto.url) | {
        "PARAMETER_STORE_PREFIX": "/kptboard/prod",
        "SECRETS_AGENT_FILES": "RAILS_MASTER_KEY=config/credentials/production.key",
    }
    app = RailsApp([sys.executable, str(ENTRYPOINT)], env, tmp_path / "rails.log", app_dir=app_dir)
    try:
        app.wait_ready()
        # secret_key_base came from the decrypted credentials (no SECRET_KEY_BASE is set).
        assert app.get_json("/secret")["secret_key_base_sha256"] == sha(secret_key_base)
        assert app.get_json("/credential/api_token")["sha256"] == sha(api_token)
        assert app.get_json("/env/RAILS_MASTER_KEY")["present"] is False
        # exec mode: puma is the agent's process; the key is not in its environment block.
        pid = app.get_json("/secret")["pid"]
        assert pid == app.proc.pid
        names = [
            entry.split(b"=", 1)[0]
            for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ]
        assert b"RAILS_MASTER_KEY" not in names and b"PARAMETER_STORE_PREFIX" in names
        key_file = app_dir / "config/credentials/production.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
        log = app.log()
        leaked = sum(value in log for value in (master_key, api_token, secret_key_base))
        assert leaked == 0, "a secret value is in the app's log"
    finally:
        app.stop()
